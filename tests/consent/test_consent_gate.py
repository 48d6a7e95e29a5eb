"""The gate and status at the exact edges of every purpose's lifetime."""

from __future__ import annotations

import pytest

from core.consent.evaluation import purpose_status
from core.consent.gate import has_consent
from core.consent.model import ConsentState
from core.consent.purposes import build_registry
from core.consent.transitions import apply_withdrawal

from .helpers import BANNER, REGISTRY, T0, at, granted_state

# (purpose, expiry of a choice made at T0 = 2026-01-15 12:00 UTC)
EXPIRIES = [
    ("analytics", at(2026, 7, 15)),
    ("ads", at(2026, 4, 15)),
    ("personalization", at(2027, 1, 15)),
    ("whatsapp", at(2028, 1, 15)),
    ("email", at(2028, 1, 15)),
]


@pytest.mark.parametrize(("purpose", "expiry"), EXPIRIES)
def test_grant_valid_until_a_second_before_expiry(purpose: str, expiry: float) -> None:
    state = granted_state(purpose)
    assert state.purposes[purpose].expires_at == expiry
    assert has_consent(state, purpose, T0)
    assert has_consent(state, purpose, expiry - 1)
    assert purpose_status(state.record(purpose), expiry - 1) == "granted"
    assert not has_consent(state, purpose, expiry)
    assert not has_consent(state, purpose, expiry + 1)
    assert purpose_status(state.record(purpose), expiry + 1) == "expired"


@pytest.mark.parametrize(("purpose", "expiry"), EXPIRIES)
def test_refusal_is_remembered_for_the_same_lifetime(purpose: str, expiry: float) -> None:
    state = granted_state(purpose, value="denied")
    assert purpose_status(state.record(purpose), expiry - 1) == "denied"
    assert purpose_status(state.record(purpose), expiry + 1) == "expired"
    assert not has_consent(state, purpose, expiry - 1)


def test_region_override_moves_the_boundary() -> None:
    registry = build_registry(["FR.analytics=13mo"])
    state = granted_state("analytics", registry=registry, region="fr")
    assert state.region == "FR"
    expiry = at(2027, 2, 15)
    assert state.purposes["analytics"].expires_at == expiry
    assert has_consent(state, "analytics", expiry - 1)
    assert not has_consent(state, "analytics", expiry + 1)
    # Another region keeps the default six months.
    other = granted_state("analytics", registry=registry, region="DE")
    assert not has_consent(other, "analytics", at(2026, 7, 15) + 1)


def test_region_is_kept_for_later_choices() -> None:
    from core.consent.transitions import apply_choices

    registry = build_registry(["FR.ads=1mo"])
    state = granted_state("analytics", registry=registry, region="FR")
    later = apply_choices(
        state, {"ads": "granted"}, source="api", now=T0, registry=registry, banner=BANNER
    ).state
    assert later.region == "FR"
    assert later.purposes["ads"].expires_at == at(2026, 2, 15)


def test_unknown_subject_purpose_and_none_state() -> None:
    state = granted_state("analytics")
    assert not has_consent(None, "analytics", T0)
    assert not has_consent(ConsentState("nobody"), "analytics", T0)
    assert not has_consent(state, "ads", T0)
    assert not has_consent(state, "no-such-purpose", T0)


def test_withdrawal_closes_the_gate_and_is_remembered() -> None:
    state = granted_state("analytics", "whatsapp")
    withdrawn = apply_withdrawal(
        state,
        source="whatsapp_keyword",
        now=T0 + 60,
        registry=REGISTRY,
        banner=BANNER,
        purposes=["whatsapp"],
    )
    assert not has_consent(withdrawn.state, "whatsapp", T0 + 61)
    assert has_consent(withdrawn.state, "analytics", T0 + 61)
    assert purpose_status(withdrawn.state.record("whatsapp"), at(2027, 12, 1)) == "denied"
    [event] = withdrawn.events
    assert (event.purpose, event.value, event.action, event.prior_status) == (
        "whatsapp",
        "denied",
        "withdraw",
        "granted",
    )
    assert event.source == "whatsapp_keyword"


def test_withdraw_everything_denies_every_purpose() -> None:
    state = granted_state("analytics", "ads")
    withdrawn = apply_withdrawal(
        state, source="api", now=T0 + 1, registry=REGISTRY, banner=BANNER
    ).state
    assert {name: record.value for name, record in withdrawn.purposes.items()} == dict.fromkeys(
        REGISTRY.names, "denied"
    )
    assert not any(has_consent(withdrawn, name, T0 + 2) for name in REGISTRY.names)
