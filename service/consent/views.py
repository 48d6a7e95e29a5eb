"""The consent answer of one subject (``ConsentOut``): its evaluated state plus a signed token."""

from __future__ import annotations

import math
from typing import Any

from core.consent.evaluation import evaluate
from core.consent.model import ConsentState
from core.consent.token import issue_token
from service.consent.policy import ConsentPolicy


def state_body(state: ConsentState, policy: ConsentPolicy, now: float) -> dict[str, Any]:
    """What to ask now, what is allowed, Consent Mode v2 and a token signed with the current key."""
    view = evaluate(state, policy.registry, policy.banner, now)
    token = issue_token(
        state,
        policy.registry.names,
        key=policy.token_keys[0],
        now=now,
        lifetime=policy.token_lifetime,
    )
    return {
        **view.to_json(),
        "token": token,
        "token_expires_at": math.floor(now) + policy.token_lifetime,
    }
