"""Google Consent Mode v2 signals derived from kervan's purposes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

Signal = Literal["granted", "denied"]


def consent_mode_signals(allowed: Callable[[str], bool]) -> dict[str, Signal]:
    """Map purposes to the four Consent Mode v2 signals.

    ``ad_personalization`` needs both advertising and personalisation consent: personalised ads
    are a use of the personalisation purpose, and advertising storage alone does not cover it.
    """

    def signal(*purposes: str) -> Signal:
        return "granted" if all(allowed(purpose) for purpose in purposes) else "denied"

    return {
        "ad_storage": signal("ads"),
        "analytics_storage": signal("analytics"),
        "ad_user_data": signal("ads"),
        "ad_personalization": signal("ads", "personalization"),
    }
