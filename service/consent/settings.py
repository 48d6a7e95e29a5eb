"""The consent feature's part of the settings (``KERVAN_CONSENT_*``), composed into
``service.settings.Settings``.

A leaf module (pydantic, the standard library, ``core`` and ``service.settings_types`` only), so
it never causes an import cycle; read the values through the one ``Settings`` object.
"""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, Field, model_validator

from service.settings_types import CommaList


class ConsentSettings(BaseModel):
    # Signs consent tokens; empty = a key derived from cookie_secret (separate label).
    consent_token_secret: str = ""
    # Earlier token secrets still accepted while their tokens age out (comma-separated).
    consent_token_previous_secrets: CommaList[str] = []
    consent_token_lifetime_seconds: int = Field(default=86_400, ge=60, le=30 * 86_400)
    # Per-region lifetimes, e.g. "FR.analytics=13mo,US-CA.ads=90d" (mo, d or h).
    consent_region_ttls: CommaList[str] = []
    # The banner/policy version in force, and the ordered history of versions with the purposes
    # each one re-asks, e.g. "1,2=ads|personalization,3=*" (current must be the last entry).
    consent_banner_version: str = Field(default="1", pattern=r"^[A-Za-z0-9._-]{1,64}$")
    consent_banner_history: CommaList[str] = []

    @model_validator(mode="after")
    def _consent_policy(self) -> Self:
        from core.consent.banner import build_banner_policy
        from core.consent.purposes import build_registry
        from core.errors import ValidationFailed

        problems: list[str] = []
        try:
            build_registry(self.consent_region_ttls)
        except ValidationFailed as exc:
            problems.append(f"consent_region_ttls: {exc.message}")
        try:
            build_banner_policy(self.consent_banner_version, self.consent_banner_history)
        except ValidationFailed as exc:
            problems.append(f"consent_banner_history: {exc.message}")
        if problems:
            raise ValueError("\n".join(problems))
        return self
