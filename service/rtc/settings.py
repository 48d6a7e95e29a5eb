"""WebRTC calls' part of the settings (``KERVAN_RTC_*``), composed into
``service.settings.Settings``: the ICE servers handed to callers with short-lived TURN
credentials, and the signaling relay's limits.

A leaf module (pydantic, ``core`` and the standard library only), so it never causes an import
cycle; read the values through the one ``Settings`` object.
"""

from __future__ import annotations

import json
from typing import Any, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    Json,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from core.rtc.ice import parse_ice_url
from service.settings_types import CommaList

MIN_TURN_SECRET_BYTES = 16
MAX_TURN_SECRET_BYTES = 256
MAX_ICE_SERVERS = 32
MAX_URLS_PER_SERVER = 8
REGION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$"


class IceServer(BaseModel):
    """One entry of ``rtc_ice_servers``: the URLs of one STUN/TURN service in one region."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    urls: list[str] = Field(min_length=1, max_length=MAX_URLS_PER_SERVER)
    region: str = Field(pattern=REGION_PATTERN)
    #: Lower first: callers get the servers in ascending priority (configuration order on ties).
    priority: int = Field(ge=0, le=65_535)

    @field_validator("urls")
    @classmethod
    def _check_urls(cls, value: list[str]) -> list[str]:
        for url in value:
            try:
                parse_ice_url(url)
            except ValueError as exc:
                raise ValueError(f"{url[:80]!r}: {exc}") from None
        return value

    @property
    def is_turn(self) -> bool:
        """Has a ``turn:``/``turns:`` URL, so callers get credentials with it."""
        return any(parse_ice_url(url).is_turn for url in self.urls)


def _as_json(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    raise ValueError(f"{type(value).__name__} is not a JSON value")


def _check_entry(index: int, entry: Any) -> None:
    """Validate one entry, naming it and its fields: the settings error shows only the key."""
    try:
        IceServer.model_validate(entry)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(part) for part in error['loc']) or 'the entry'}: "
            + error["msg"].removeprefix("Value error, ")
            for error in exc.errors()
        ]
        raise ValueError(f"entry {index}: " + "; ".join(problems)) from None


class RtcSettings(BaseModel):
    rtc_ice_servers: Json[list[IceServer]] = Field(
        default_factory=list,
        max_length=MAX_ICE_SERVERS,
        description="ICE servers handed out by `GET /rtc/ice-servers`, a JSON list: "
        '`[{"urls": ["turn:turn-eu.example.com:3478?transport=udp", '
        '"turns:turn-eu.example.com:5349?transport=tcp"], "region": "eu", "priority": 10}, '
        '{"urls": ["stun:stun.example.com:3478"], "region": "eu", "priority": 20}]`; '
        "lower priority first; entries with turn:/turns: URLs get TURN credentials.",
    )
    rtc_turn_secrets: CommaList[SecretStr] = Field(
        default=[],
        description="Shared secrets of the TURN servers (coturn `use-auth-secret`), "
        "comma-separated: the first signs, all verify (rotation); required with TURN URLs.",
    )
    rtc_turn_ttl_seconds: int = Field(
        default=3600,
        ge=60,
        le=86_400,
        description="Lifetime of a TURN credential (its username carries the expiry).",
    )
    rtc_window_size: int = Field(
        default=256,
        ge=1,
        le=65_536,
        description="Unacknowledged signaling messages per peer and call; past it the sender "
        "gets a window_overflow error.",
    )
    rtc_retransmit_ms: int = Field(
        default=400,
        ge=10,
        le=60_000,
        description="First retransmit of an unacknowledged signaling message.",
    )
    rtc_retransmit_max_ms: int = Field(
        default=5000,
        ge=10,
        le=120_000,
        description="Cap of the retransmits' exponential backoff (>= KERVAN_RTC_RETRANSMIT_MS).",
    )
    rtc_call_ttl_seconds: float = Field(
        default=14_400,
        ge=60,
        le=86_400,
        description="Longest a call's state is kept.",
    )
    rtc_ring_timeout_seconds: float = Field(
        default=60,
        ge=5,
        le=600,
        description="An unanswered call:start ends as missed after this.",
    )

    @field_validator("rtc_ice_servers", mode="before")
    @classmethod
    def _ice_servers_as_json(cls, value: Any) -> Any:
        # A Json field: pydantic-settings hands the environment's text to pydantic as is, so a
        # malformed value is a validation error naming the key; values given in Python (a list)
        # take the same path, and an empty variable means none.
        if isinstance(value, str | bytes):
            text = value if value.strip() else "[]"
        else:
            text = json.dumps(value, default=_as_json)
        try:
            entries = json.loads(text)
        except ValueError:
            return text  # pydantic says where the JSON breaks
        if isinstance(entries, list):
            for index, entry in enumerate(entries, start=1):
                _check_entry(index, entry)
        return text

    @field_validator("rtc_turn_secrets")
    @classmethod
    def _check_turn_secrets(cls, value: list[SecretStr]) -> list[SecretStr]:
        for position, secret in enumerate(value, start=1):
            size = len(secret.get_secret_value().encode())
            if not MIN_TURN_SECRET_BYTES <= size <= MAX_TURN_SECRET_BYTES:
                raise ValueError(
                    f"secret {position} has {size} bytes; each must have "
                    f"{MIN_TURN_SECRET_BYTES} to {MAX_TURN_SECRET_BYTES}"
                )
        return value

    @model_validator(mode="after")
    def _check_rtc(self) -> Self:
        problems: list[str] = []
        if any(server.is_turn for server in self.rtc_ice_servers) and not self.rtc_turn_secrets:
            problems.append(
                "rtc_turn_secrets: must name at least one secret: KERVAN_RTC_ICE_SERVERS has "
                "turn:/turns: URLs, whose credentials it signs"
            )
        if self.rtc_retransmit_max_ms < self.rtc_retransmit_ms:
            problems.append(
                "rtc_retransmit_max_ms: must be at least KERVAN_RTC_RETRANSMIT_MS "
                f"({self.rtc_retransmit_ms})"
            )
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @property
    def rtc_turn_secret_values(self) -> list[str]:
        """The TURN secrets in order, the signing one first."""
        return [secret.get_secret_value() for secret in self.rtc_turn_secrets]
