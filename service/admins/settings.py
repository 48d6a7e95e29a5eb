"""Admin accounts' part of the settings (``KERVAN_ADMIN_*``): one-time codes and sessions,
composed into ``service.settings.Settings``.

A leaf module (pydantic and the standard library only), so it never causes an import cycle;
read the values through the one ``Settings`` object. Whether the session cookie is ``Secure``
(and ``__Host-`` prefixed) is not a setting: it follows ``KERVAN_ENV=production``.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, Field, model_validator


class AdminSettings(BaseModel):
    # Language of an admin added without --language (their OTP messages are in it).
    admin_default_language: Literal["tr", "de", "en"] = "tr"
    # How long a one-time login code sent over Telegram stays valid.
    admin_otp_ttl_seconds: int = Field(default=300, ge=30, le=3600)
    # An admin session ends after this long without a request (sliding).
    admin_session_ttl_seconds: int = Field(default=12 * 3600, ge=60, le=30 * 86_400)
    # A session's last-seen time (and its expiry) is written at most once per this period.
    admin_session_refresh_seconds: int = Field(default=60, ge=1, le=3600)
    # An admin session ends this long after login however active it is; the cookie's Max-Age.
    admin_session_max_age_seconds: int = Field(default=7 * 86_400, ge=60, le=400 * 86_400)

    @model_validator(mode="after")
    def _check_admin_sessions(self) -> Self:
        if self.admin_session_refresh_seconds >= self.admin_session_ttl_seconds:
            raise ValueError(
                "admin_session_refresh_seconds: must be shorter than admin_session_ttl_seconds"
            )
        return self
