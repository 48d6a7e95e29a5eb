"""A choice is valid for ``ts <= now < expires_at``: every evaluation path agrees at the boundary.

Each path is asked just before (1 s, 1 µs), exactly at, and just after ``expires_at`` with an
injected time, so turning one ``<`` into ``<=`` (or ``>=`` into ``>``) in any single path fails
a test here:

* ``purpose_status`` (``core/consent/evaluation.py``): the status and ``needs_prompt``;
* ``has_consent`` (``core/consent/gate.py``): ``allowed``, Consent Mode, token issuance, and the
  WhatsApp gate (``service/whatsapp/consent.py``, state loaded from the database);
* ``ConsentTokenClaims.allows`` and ``verify_token`` (``core/consent/token.py``): a purpose's
  expiry and the token's own expiry;
* the event log's ``prior_status`` (``core/consent/transitions.py``);
* ``GET /consent/{subject}`` through the app with a manual clock, on SQLite and MariaDB.

No SQL statement filters on consent expiry (the state is a JSON document evaluated in Python),
so there is no SQL comparison to pin.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import httpx
import pytest

from core.clock import ManualClock
from core.consent.evaluation import evaluate, purpose_status
from core.consent.gate import has_consent
from core.consent.subject_proof import derive_subject_key, subject_proof
from core.consent.token import (
    InvalidConsentToken,
    derive_token_key,
    issue_token,
    verify_token,
)
from core.consent.transitions import apply_choices
from service.consent import store
from service.consent.policy import ConsentPolicy, policy_from_settings
from service.db import Database
from service.settings import Settings
from service.whatsapp.consent import opt_in, subject_of, whatsapp_allowed

from .helpers import BANNER, REGISTRY, T0, at, granted_state

KEY = derive_token_key("boundary-tests-root-secret-0123456789")
#: ads lasts 3 months: granted at T0 (2026-01-15 12:00 UTC), it expires 2026-04-15 12:00 UTC.
ADS_EXPIRES = at(2026, 4, 15)

#: (name, offset from the expiry, whether the choice still holds at that instant)
INSTANTS = [
    ("1s-before", -1.0, True),
    ("1us-before", -1e-6, True),
    ("exactly-at", 0.0, False),
    ("1us-after", 1e-6, False),
    ("1s-after", 1.0, False),
]
AROUND_EXPIRY = pytest.mark.parametrize(
    ("offset", "valid"), [(o, v) for _, o, v in INSTANTS], ids=[n for n, _, _ in INSTANTS]
)


def test_the_offsets_are_distinct_instants() -> None:
    # At ~1.8e9 s a float resolves ~2.4e-7 s: a microsecond is a different instant.
    assert len({ADS_EXPIRES + offset for _, offset, _ in INSTANTS}) == len(INSTANTS)


def test_the_recorded_expiry_is_the_one_these_tests_assume() -> None:
    state = granted_state("ads", now=T0)
    assert state.purposes["ads"].expires_at == ADS_EXPIRES


# ---------------------------------------------------------------- core paths


@AROUND_EXPIRY
@pytest.mark.parametrize("value", ["granted", "denied"])
def test_purpose_status(offset: float, valid: bool, value: str) -> None:
    # Refusals expire too (then the purpose is asked again).
    record = granted_state("ads", now=T0, value=value).purposes["ads"]
    assert purpose_status(record, ADS_EXPIRES + offset) == (value if valid else "expired")


@AROUND_EXPIRY
def test_has_consent(offset: float, valid: bool) -> None:
    state = granted_state("ads", now=T0)
    assert has_consent(state, "ads", ADS_EXPIRES + offset) is valid


@AROUND_EXPIRY
def test_evaluate_status_prompt_allowed_and_consent_mode(offset: float, valid: bool) -> None:
    state = granted_state("analytics", "ads", "personalization", now=T0)
    view = evaluate(state, REGISTRY, BANNER, ADS_EXPIRES + offset)
    assert view.purposes["ads"].status == ("granted" if valid else "expired")
    assert ("ads" in view.needs_prompt) is not valid
    assert view.allowed["ads"] is valid
    assert view.consent_mode["ad_storage"] == ("granted" if valid else "denied")
    # analytics lasts 6 months: untouched by the ads boundary.
    assert view.purposes["analytics"].status == "granted"


@AROUND_EXPIRY
def test_token_issued_at_the_instant_lists_the_purpose_only_while_valid(
    offset: float, valid: bool
) -> None:
    state = granted_state("ads", now=T0)
    now = ADS_EXPIRES + offset
    token = issue_token(state, REGISTRY.names, key=KEY, now=now, lifetime=3600)
    claims = verify_token(token, keys=[KEY], now=now)
    assert ("ads" in claims.purposes) is valid


@AROUND_EXPIRY
def test_token_claims_stop_allowing_at_the_purpose_expiry(offset: float, valid: bool) -> None:
    state = granted_state("ads", now=T0)
    # Issued an hour before the consent ends, valid for a day: the purpose's expiry decides.
    issued = ADS_EXPIRES - 3600
    token = issue_token(state, REGISTRY.names, key=KEY, now=issued, lifetime=86_400)
    claims = verify_token(token, keys=[KEY], now=issued)
    assert claims.purposes["ads"] == ADS_EXPIRES
    assert claims.allows("ads", ADS_EXPIRES + offset) is valid


@AROUND_EXPIRY
def test_token_stops_at_its_own_expiry(offset: float, valid: bool) -> None:
    state = granted_state("ads", now=T0)
    # Consent runs for months; the one-hour token is what ends first.
    token = issue_token(state, REGISTRY.names, key=KEY, now=T0, lifetime=3600)
    token_expires = T0 + 3600
    claims = verify_token(token, keys=[KEY], now=T0)
    assert claims.expires_at == token_expires
    assert claims.allows("ads", token_expires + offset) is valid
    if valid:
        verify_token(token, keys=[KEY], now=token_expires + offset)
    else:
        with pytest.raises(InvalidConsentToken) as raised:
            verify_token(token, keys=[KEY], now=token_expires + offset)
        assert raised.value.details == {"reason": "expired"}


# The event log records times in whole milliseconds (so state, rows and hashes agree): a choice
# made within half a millisecond of the expiry is stamped AT the expiry and judged there. So this
# path is probed a millisecond (not a microsecond) away from the boundary.
@pytest.mark.parametrize(
    ("offset", "prior"),
    [(-1.0, "granted"), (-0.001, "granted"), (0.0, "expired"), (0.001, "expired")],
    ids=["1s-before", "1ms-before", "exactly-at", "1ms-after"],
)
def test_event_prior_status_of_a_renewed_choice(offset: float, prior: str) -> None:
    state = granted_state("ads", now=T0)
    move = apply_choices(
        state,
        {"ads": "granted"},
        source="banner",
        now=ADS_EXPIRES + offset,
        registry=REGISTRY,
        banner=BANNER,
    )
    [event] = move.events
    assert event.prior_status == prior


# ---------------------------------------------------------------- through the database


@pytest.fixture
def policy(make_settings: Callable[..., Settings]) -> ConsentPolicy:
    return policy_from_settings(make_settings())


@AROUND_EXPIRY
async def test_whatsapp_gate_on_the_stored_state(
    database: Database, policy: ConsentPolicy, offset: float, valid: bool
) -> None:
    contact_id = 4242
    async with database.begin() as conn:
        state = await store.record(
            conn,
            subject_of(contact_id),
            {"whatsapp": "granted"},
            source="whatsapp_keyword",
            now=T0,
            policy=policy,
        )
    expires = state.purposes["whatsapp"].expires_at
    async with database.connect() as conn:
        assert await whatsapp_allowed(conn, contact_id, expires + offset) is valid
    # Opting in again renews only a grant that no longer holds.
    async with database.begin() as conn:
        renewed = await opt_in(
            conn, contact_id, expires + offset, source="whatsapp_keyword", policy=policy
        )
        assert renewed is (not valid)


COOKIE_SECRET = "boundary-tests-cookie-secret-0123456789abcdef"


@AROUND_EXPIRY
async def test_http_get_state_at_the_boundary(
    database: Database,
    make_settings: Callable[..., Settings],
    make_client: Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]],
    offset: float,
    valid: bool,
) -> None:
    clock = ManualClock(T0)
    settings = make_settings(database_url=database.url, cookie_secret=COOKIE_SECRET)
    proof = {"X-Consent-Proof": subject_proof("user-b", derive_subject_key(COOKIE_SECRET))}
    async with make_client(settings, clock=clock) as client:
        put = await client.put(
            "/consent/user-b", json={"choices": {"ads": "granted"}}, headers=proof
        )
        assert put.status_code == 200, put.text
        assert put.json()["purposes"]["ads"]["expires_at"] == ADS_EXPIRES
        clock.set(ADS_EXPIRES + offset)
        body = (await client.get("/consent/user-b", headers=proof)).json()
    assert body["purposes"]["ads"]["status"] == ("granted" if valid else "expired")
    assert body["allowed"]["ads"] is valid
    assert ("ads" in body["needs_prompt"]) is not valid
    assert body["consent_mode"]["ad_storage"] == ("granted" if valid else "denied")
    claims = verify_token(
        body["token"], keys=[derive_token_key(COOKIE_SECRET)], now=ADS_EXPIRES + offset
    )
    assert ("ads" in claims.purposes) is valid
