"""What the front end needs from a state: per-purpose status, what to ask now, Consent Mode."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.consent.banner import BannerPolicy
from core.consent.consent_mode import Signal, consent_mode_signals
from core.consent.gate import has_consent
from core.consent.model import ConsentState, PurposeRecord, Status
from core.consent.purposes import PurposeRegistry


def purpose_status(record: PurposeRecord | None, now: float) -> Status:
    if record is None:
        return "unknown"
    if now >= record.expires_at:
        return "expired"
    return record.value


@dataclass(frozen=True, slots=True)
class PurposeView:
    purpose: str
    status: Status
    expires_at: float | None
    ts: float | None
    source: str | None
    banner_version: str | None
    # A newer banner version touches this purpose: the choice stands until it is answered again.
    stale: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "expires_at": self.expires_at,
            "ts": self.ts,
            "source": self.source,
            "banner_version": self.banner_version,
            "stale": self.stale,
        }


@dataclass(frozen=True, slots=True)
class ConsentView:
    subject: str
    region: str | None
    purposes: dict[str, PurposeView]
    needs_prompt: list[str]
    # has_consent per purpose: what script gates and server-side tags act on.
    allowed: dict[str, bool]
    consent_mode: dict[str, Signal]
    banner_version: str
    updated_at: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "region": self.region,
            "purposes": {name: view.to_json() for name, view in self.purposes.items()},
            "needs_prompt": self.needs_prompt,
            "allowed": self.allowed,
            "consent_mode": self.consent_mode,
            "banner_version": self.banner_version,
            "updated_at": self.updated_at,
        }


def needs_prompt(
    state: ConsentState, registry: PurposeRegistry, banner: BannerPolicy, now: float
) -> list[str]:
    """The banner purposes to ask now: never answered, expired, or touched by a newer version.

    Unexpired refusals are not asked again; that is the point of remembering them.
    """
    result = []
    for purpose in registry.banner_purposes:
        record = state.record(purpose)
        status = purpose_status(record, now)
        answered_under_old_banner = record is not None and banner.is_stale(
            purpose, record.banner_version
        )
        if status in ("unknown", "expired") or answered_under_old_banner:
            result.append(purpose)
    return result


def evaluate(
    state: ConsentState, registry: PurposeRegistry, banner: BannerPolicy, now: float
) -> ConsentView:
    views: dict[str, PurposeView] = {}
    for purpose in registry.names:
        record = state.record(purpose)
        status = purpose_status(record, now)
        views[purpose] = PurposeView(
            purpose=purpose,
            status=status,
            expires_at=None if record is None else record.expires_at,
            ts=None if record is None else record.ts,
            source=None if record is None else record.source,
            banner_version=None if record is None else record.banner_version,
            stale=record is not None
            and status in ("granted", "denied")
            and banner.is_stale(purpose, record.banner_version),
        )
    return ConsentView(
        subject=state.subject,
        region=state.region,
        purposes=views,
        needs_prompt=needs_prompt(state, registry, banner, now),
        allowed={purpose: has_consent(state, purpose, now) for purpose in registry.names},
        consent_mode=consent_mode_signals(lambda purpose: has_consent(state, purpose, now)),
        banner_version=banner.current,
        updated_at=state.updated_at,
    )
