"""The consent state of one subject: the latest choice per purpose."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from core.errors import ValidationFailed

Value = Literal["granted", "denied"]
Status = Literal["granted", "denied", "expired", "unknown"]

VALUES: frozenset[str] = frozenset({"granted", "denied"})
SOURCES: frozenset[str] = frozenset(
    {"banner", "api", "whatsapp_keyword", "unsubscribe_link", "admin"}
)
SUBJECT_MAX_LENGTH = 64
# Subjects are user ids or anonymous cookie ids; they travel in URL paths and tokens, so the
# alphabet excludes whitespace, '/', '?', '#', '%' and anything that would need escaping. The
# first character is alphanumeric so an exported CSV cell can never start a spreadsheet formula.
# The same pattern documents the {subject} path parameter in /openapi.json (anchored, because a
# JSON-schema pattern is a search); it is applied with fullmatch so that, unlike "$", a trailing
# newline is not accepted either.
SUBJECT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@+=-]{0,63}$"
_SUBJECT = re.compile(SUBJECT_PATTERN)
GENESIS_HASH = "0" * 64


def validate_subject(subject: str) -> str:
    if _SUBJECT.fullmatch(subject) is None:
        raise ValidationFailed(
            "subject must be 1-64 characters of letters, digits and . _ : @ + = -, "
            "starting with a letter or digit",
            details={"subject_length": len(subject), "max_length": SUBJECT_MAX_LENGTH},
        )
    return subject


def validate_source(source: str) -> str:
    if source not in SOURCES:
        raise ValidationFailed(
            "unknown consent source", details={"source": source, "allowed": sorted(SOURCES)}
        )
    return source


def validate_value(purpose: str, value: str) -> Value:
    if value not in VALUES:
        raise ValidationFailed(
            "consent value must be 'granted' or 'denied'",
            details={"purpose": purpose, "value": value},
        )
    return cast(Value, value)


@dataclass(frozen=True, slots=True)
class PurposeRecord:
    """The latest choice for one purpose. ``expires_at`` applies to refusals as well."""

    value: Value
    ts: float
    expires_at: float
    source: str
    banner_version: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "ts": self.ts,
            "expires_at": self.expires_at,
            "source": self.source,
            "banner_version": self.banner_version,
        }

    @classmethod
    def from_json(cls, purpose: str, data: Mapping[str, Any]) -> PurposeRecord:
        return cls(
            value=validate_value(purpose, str(data["value"])),
            ts=float(data["ts"]),
            expires_at=float(data["expires_at"]),
            source=str(data["source"]),
            banner_version=None
            if data.get("banner_version") is None
            else str(data["banner_version"]),
        )


@dataclass(frozen=True, slots=True)
class ConsentState:
    """Everything known about one subject's consent.

    ``seq`` and ``head_hash`` name the last event of the subject's hash chain, so that a log
    whose newest events were deleted no longer matches the state.
    """

    subject: str
    region: str | None = None
    purposes: Mapping[str, PurposeRecord] = field(default_factory=dict)
    updated_at: float | None = None
    seq: int = 0
    head_hash: str = GENESIS_HASH

    def record(self, purpose: str) -> PurposeRecord | None:
        return self.purposes.get(purpose)

    def purposes_json(self) -> dict[str, dict[str, Any]]:
        return {name: record.to_json() for name, record in sorted(self.purposes.items())}


def purposes_from_json(data: Mapping[str, Any] | None) -> dict[str, PurposeRecord]:
    if not data:
        return {}
    return {name: PurposeRecord.from_json(name, item) for name, item in data.items()}
