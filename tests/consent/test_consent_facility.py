"""The consent API's operations without HTTP: transactions, audit entries, export streaming."""

from __future__ import annotations

import orjson
from sqlalchemy import update

from core.clock import ManualClock
from core.consent.subject_proof import derive_subject_key, proves_subject, subject_from_cookie
from service.audit import list_audit
from service.consent.export import Period
from service.consent.facility import ConsentFacility
from service.consent.policy import ConsentPolicy
from service.db import Database
from service.db.tables.consent import consent_events
from service.metrics import REGISTRY

from .helpers import BANNER, T0, at
from .helpers import REGISTRY as PURPOSES

SUBJECT_KEY = derive_subject_key("facility-tests-root-secret-0123456789")
POLICY = ConsentPolicy(
    registry=PURPOSES,
    banner=BANNER,
    token_keys=(b"t" * 32,),
    token_lifetime=900,
    subject_keys=(SUBJECT_KEY,),
)
JANUARY = Period(round(at(2026, 1, 1, 0) * 1000), round(at(2026, 2, 1, 0) * 1000))


def facility(database: Database, *, secure_cookies: bool = False) -> ConsentFacility:
    return ConsentFacility(database, ManualClock(T0), POLICY, secure_cookies=secure_cookies)


def breaks_counted() -> float:
    return REGISTRY.get_sample_value("kervan_consent_chain_breaks_total") or 0.0


async def test_a_minted_subject_comes_with_its_proof_and_cookie(database: Database) -> None:
    minted = facility(database, secure_cookies=True).mint()
    subject = minted.body["subject"]
    assert subject.startswith("a-")
    assert proves_subject(subject, minted.body["subject_proof"], [SUBJECT_KEY])
    assert subject_from_cookie(minted.cookie.value, [SUBJECT_KEY]) == subject
    assert minted.cookie.secure
    assert minted.body["token_expires_at"] == int(T0) + 900
    assert not facility(database).mint().cookie.secure


async def test_an_admin_record_is_audited_with_the_change(database: Database) -> None:
    consent = facility(database)
    body = await consent.admin_record(
        "api-key", "user-a", {"ads": "granted"}, region="de", reason="phone call"
    )
    assert body["region"] == "DE" and body["purposes"]["ads"]["source"] == "admin"
    async with database.connect() as conn:
        [entry] = await list_audit(conn, action="consent.record")
    assert (entry["actor"], entry["subject"]) == ("api-key", "user-a")
    assert entry["details"] == {"choices": {"ads": "granted"}, "reason": "phone call"}


async def test_the_export_is_audited_verified_and_streamed(database: Database) -> None:
    consent = facility(database)
    await consent.record("user-e", {"analytics": "granted", "ads": "denied"}, source="banner")
    exported = await consent.export("api-key", JANUARY, "jsonl")
    assert exported.media_type == "application/x-ndjson"
    assert exported.headers["Content-Disposition"] == (
        f'attachment; filename="consent-events-{JANUARY.start_ms}-{JANUARY.end_ms}.jsonl"'
    )
    assert exported.headers["X-Consent-Chain-Ok"] == "true"
    assert exported.headers["X-Consent-Exported"] == "2"
    async with database.connect() as conn:
        [entry] = await list_audit(conn, action="consent.export")
    assert entry["details"] == {
        "from_ms": JANUARY.start_ms,
        "to_ms": JANUARY.end_ms,
        "format": "jsonl",
    }
    # The rows are read only while the body streams, on a connection of their own.
    lines = [orjson.loads(line) async for chunk in exported.chunks for line in chunk.splitlines()]
    assert [(row["purpose"], row["chain_ok"]) for row in lines[:-1]] == [
        ("ads", True),
        ("analytics", True),
    ]
    assert lines[-1]["verification"]["exported"] == 2

    as_csv = await consent.export("api-key", JANUARY, "csv")
    assert as_csv.media_type == "text/csv; charset=utf-8"
    assert as_csv.headers["Content-Disposition"].endswith('.csv"')


async def test_tampering_is_reported_and_counted(database: Database) -> None:
    consent = facility(database)
    await consent.record("user-t", {"ads": "granted"}, source="api")
    await consent.withdraw("user-t", ["ads"])
    async with database.begin() as conn:
        await conn.execute(
            update(consent_events)
            .where(consent_events.c.subject == "user-t", consent_events.c.seq == 1)
            .values(value="denied")
        )
    before = breaks_counted()
    page = await consent.events("user-t", after_seq=0, limit=1)
    assert [event["seq"] for event in page["events"]] == [1]
    assert page["next_after_seq"] == 1
    assert page["verification"]["ok"] is False
    assert breaks_counted() == before + 1
    verification = await consent.verify(JANUARY)
    assert not verification.ok
    assert breaks_counted() == before + 1 + verification.break_count
