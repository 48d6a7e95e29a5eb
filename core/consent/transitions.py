"""Recording choices and withdrawals: the new state plus the chained events that prove it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from core.consent.banner import BannerPolicy
from core.consent.chain import ConsentEvent, seal
from core.consent.evaluation import purpose_status
from core.consent.model import (
    ConsentState,
    PurposeRecord,
    Value,
    validate_source,
    validate_subject,
    validate_value,
)
from core.consent.purposes import PurposeRegistry, normalize_region
from core.errors import ValidationFailed


@dataclass(frozen=True, slots=True)
class Transition:
    state: ConsentState
    events: tuple[ConsentEvent, ...]


def apply_choices(
    state: ConsentState,
    choices: Mapping[str, str],
    *,
    source: str,
    now: float,
    registry: PurposeRegistry,
    banner: BannerPolicy,
    banner_version: str | None = None,
    region: str | None = None,
) -> Transition:
    """Record a grant or refusal per purpose; each starts a fresh lifetime for that purpose.

    ``banner_version`` defaults to the current one (the policy in force when the choice was
    made); ``region`` updates the subject's region before lifetimes are computed.
    """
    if not choices:
        raise ValidationFailed("at least one purpose choice is required", details={})
    registry.require(choices)
    values = {purpose: validate_value(purpose, value) for purpose, value in choices.items()}
    version = banner.current if banner_version is None else banner_version
    banner.require_known(version)
    actions = {
        purpose: "grant" if value == "granted" else "refuse" for purpose, value in values.items()
    }
    return _apply(state, values, actions, source, now, registry, version, normalize_region(region))


def apply_withdrawal(
    state: ConsentState,
    *,
    source: str,
    now: float,
    registry: PurposeRegistry,
    banner: BannerPolicy,
    purposes: Sequence[str] | None = None,
) -> Transition:
    """Deny the named purposes (all registered ones by default), remembered like refusals."""
    targets = list(registry.names) if purposes is None else list(dict.fromkeys(purposes))
    if not targets:
        raise ValidationFailed("at least one purpose to withdraw is required", details={})
    registry.require(targets)
    values: dict[str, Value] = dict.fromkeys(targets, "denied")
    actions = dict.fromkeys(targets, "withdraw")
    return _apply(state, values, actions, source, now, registry, banner.current, None)


def _apply(
    state: ConsentState,
    values: Mapping[str, Value],
    actions: Mapping[str, str],
    source: str,
    now: float,
    registry: PurposeRegistry,
    banner_version: str,
    region: str | None,
) -> Transition:
    validate_subject(state.subject)
    validate_source(source)
    # Whole milliseconds, so the state, the stored events and their hashes agree exactly.
    ts_ms = round(now * 1000)
    ts = ts_ms / 1000
    effective_region = region if region is not None else state.region
    purposes = dict(state.purposes)
    events: list[ConsentEvent] = []
    seq, head = state.seq, state.head_hash
    for purpose in sorted(values):
        expires_at_ms = round(registry.ttl(purpose, effective_region).expires_at(ts) * 1000)
        previous = purposes.get(purpose)
        purposes[purpose] = PurposeRecord(
            value=values[purpose],
            ts=ts,
            expires_at=expires_at_ms / 1000,
            source=source,
            banner_version=banner_version,
        )
        seq += 1
        event = seal(
            ConsentEvent(
                subject=state.subject,
                seq=seq,
                ts_ms=ts_ms,
                purpose=purpose,
                value=values[purpose],
                action=actions[purpose],
                prior_status=purpose_status(previous, ts),
                source=source,
                banner_version=banner_version,
                region=effective_region,
                expires_at_ms=expires_at_ms,
                prev_hash=head,
            )
        )
        head = event.hash
        events.append(event)
    new_state = replace(
        state,
        region=effective_region,
        purposes=purposes,
        updated_at=ts,
        seq=seq,
        head_hash=head,
    )
    return Transition(new_state, tuple(events))
