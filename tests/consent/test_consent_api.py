"""The consent HTTP API on SQLite and MariaDB."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import delete, update

from core.clock import ManualClock
from core.consent.subject_proof import derive_subject_key, subject_proof
from core.consent.token import derive_token_key, verify_token
from service.db import Database
from service.db.tables.consent import consent_events
from service.settings import Settings

from .helpers import T0, at

ADMIN = {"Authorization": "Bearer test-admin-key"}
COOKIE_SECRET = "consent-tests-cookie-secret-0123456789abcdef"
MakeClient = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


def proof(subject: str) -> dict[str, str]:
    """What the site's back end gets from POST /admin/consent/{subject}/proof for its user ids."""
    return {"X-Consent-Proof": subject_proof(subject, derive_subject_key(COOKIE_SECRET))}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
async def client(
    database: Database,
    make_settings: Callable[..., Settings],
    make_client: MakeClient,
    clock: ManualClock,
) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(
        database_url=database.url,
        cookie_secret=COOKIE_SECRET,
        consent_region_ttls="FR.analytics=13mo",
        consent_banner_version="2",
        consent_banner_history="1,2=ads",
    )
    async with make_client(settings, clock=clock) as http:
        yield http


async def test_first_visit_asks_every_banner_purpose(client: httpx.AsyncClient) -> None:
    response = await client.get("/consent/anon-abc", headers=proof("anon-abc"))
    assert response.status_code == 200
    body = response.json()
    assert body["needs_prompt"] == ["analytics", "ads", "personalization"]
    assert {p["status"] for p in body["purposes"].values()} == {"unknown"}
    assert set(body["consent_mode"].values()) == {"denied"}
    assert body["banner_version"] == "2"
    claims = verify_token(
        body["token"], keys=[derive_token_key(COOKIE_SECRET)], now=T0, subject="anon-abc"
    )
    assert dict(claims.purposes) == {}


async def test_put_records_choices_and_returns_token(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    response = await client.put(
        "/consent/anon-abc",
        headers=proof("anon-abc"),
        json={
            "choices": {"analytics": "granted", "ads": "granted", "personalization": "denied"},
            "source": "banner",
            "region": "fr",
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["region"] == "FR"
    assert body["needs_prompt"] == []
    assert body["purposes"]["analytics"]["status"] == "granted"
    # Region override: 13 months in France instead of 6.
    assert body["purposes"]["analytics"]["expires_at"] == at(2027, 2, 15)
    assert body["purposes"]["personalization"]["status"] == "denied"
    assert body["allowed"] == {
        "analytics": True,
        "ads": True,
        "personalization": False,
        "whatsapp": False,
        "email": False,
    }
    assert body["consent_mode"] == {
        "ad_storage": "granted",
        "analytics_storage": "granted",
        "ad_user_data": "granted",
        "ad_personalization": "denied",
    }
    claims = verify_token(body["token"], keys=[derive_token_key(COOKIE_SECRET)], now=T0)
    assert claims.allows("ads", T0) and not claims.allows("personalization", T0)
    assert body["token_expires_at"] == int(T0) + 86_400

    # Ads lasts 3 months: a second after that, only ads is asked again.
    clock.set(at(2026, 4, 15) + 1)
    later = (await client.get("/consent/anon-abc", headers=proof("anon-abc"))).json()
    assert later["needs_prompt"] == ["ads"]
    assert later["purposes"]["ads"]["status"] == "expired"
    assert later["consent_mode"]["ad_storage"] == "denied"
    clock.set(at(2026, 4, 15) - 1)
    assert (await client.get("/consent/anon-abc", headers=proof("anon-abc"))).json()[
        "needs_prompt"
    ] == []


async def test_old_banner_version_reprompts_touched_purposes(client: httpx.AsyncClient) -> None:
    await client.put(
        "/consent/anon-v",
        headers=proof("anon-v"),
        json={"choices": {"analytics": "granted", "ads": "denied"}, "banner_version": "1"},
    )
    body = (await client.get("/consent/anon-v", headers=proof("anon-v"))).json()
    # Version 2 touched ads only; personalization was never answered.
    assert body["needs_prompt"] == ["ads", "personalization"]
    assert body["purposes"]["ads"]["stale"] is True


async def test_delete_withdraws_everything_and_keeps_the_log(client: httpx.AsyncClient) -> None:
    await client.put(
        "/consent/user-7",
        json={"choices": {"whatsapp": "granted", "ads": "granted"}},
        headers=proof("user-7"),
    )
    response = await client.delete("/consent/user-7", headers=proof("user-7"))
    assert response.status_code == 200
    body = response.json()
    assert {p["status"] for p in body["purposes"].values()} == {"denied"}
    # A withdrawal is remembered like a refusal: the banner does not ask again right away.
    assert body["needs_prompt"] == []
    events = (await client.get("/consent/user-7/events", headers=ADMIN)).json()
    assert [(e["purpose"], e["action"]) for e in events["events"][:2]] == [
        ("ads", "grant"),
        ("whatsapp", "grant"),
    ]
    assert {e["action"] for e in events["events"][2:]} == {"withdraw"}
    assert len(events["events"]) == 2 + 5
    assert events["verification"] == {"ok": True, "checked": 7, "breaks": []}


async def test_partial_withdrawal(client: httpx.AsyncClient) -> None:
    await client.put(
        "/consent/user-8",
        json={"choices": {"whatsapp": "granted", "ads": "granted"}},
        headers=proof("user-8"),
    )
    body = (
        await client.delete("/consent/user-8?purposes=whatsapp", headers=proof("user-8"))
    ).json()
    assert body["purposes"]["whatsapp"]["status"] == "denied"
    assert body["purposes"]["ads"]["status"] == "granted"


@pytest.mark.parametrize(
    ("method", "path", "payload", "status", "code"),
    [
        ("PUT", "/consent/anon-1", {"choices": {"cookies": "granted"}}, 422, "validation_failed"),
        ("PUT", "/consent/anon-1", {"choices": {"ads": "yes"}}, 422, "validation_failed"),
        ("PUT", "/consent/anon-1", {"choices": {}}, 422, "validation_failed"),
        ("PUT", "/consent/anon-1", {}, 422, "validation_failed"),
        ("PUT", "/consent/anon-1", {"choices": {"ads": "granted"}, "source": "admin"}, 422, None),
        ("PUT", "/consent/anon-1", {"choices": {"ads": "granted"}, "region": "Mars"}, 422, None),
        (
            "PUT",
            "/consent/anon-1",
            {"choices": {"ads": "granted"}, "banner_version": "9"},
            422,
            None,
        ),
        ("PUT", "/consent/" + "a" * 65, {"choices": {"ads": "granted"}}, 422, None),
        ("GET", "/consent/" + "a" * 65, None, 422, None),
        ("GET", "/consent/bad%20id", None, 422, None),
        ("DELETE", "/consent/anon-1?purposes=cookies", None, 422, None),
    ],
)
async def test_bad_input_is_a_clear_4xx_and_writes_nothing(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    payload: Any,
    status: int,
    code: str | None,
) -> None:
    response = await client.request(method, path, json=payload, headers=proof("anon-1"))
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["message"]
    if code is not None:
        assert error["code"] == code
    state = (await client.get("/consent/anon-1", headers=proof("anon-1"))).json()
    assert {p["status"] for p in state["purposes"].values()} == {"unknown"}


async def test_unknown_purpose_error_lists_it(client: httpx.AsyncClient) -> None:
    response = await client.put(
        "/consent/anon-1", json={"choices": {"cookies": "granted"}}, headers=proof("anon-1")
    )
    assert response.json()["error"]["details"]["unknown"] == ["cookies"]


async def test_malformed_json_is_400(client: httpx.AsyncClient) -> None:
    response = await client.put(
        "/consent/anon-1",
        content=b"{not json",
        headers={"content-type": "application/json", **proof("anon-1")},
    )
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/consent/user-1/events"),
        ("GET", "/admin/consent/export?from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z"),
        ("GET", "/admin/consent/verify?from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z"),
        ("PUT", "/admin/consent/user-1"),
        ("POST", "/admin/consent/user-1/proof"),
    ],
)
async def test_admin_endpoints_need_the_admin_key(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await client.request(method, path, json={"choices": {"ads": "granted"}})
    assert response.status_code == 401
    wrong = await client.request(
        method, path, json={"choices": {"ads": "granted"}}, headers={"X-API-Key": "nope"}
    )
    assert wrong.status_code == 401


async def test_admin_record_is_audited_with_source_admin(client: httpx.AsyncClient) -> None:
    response = await client.put(
        "/admin/consent/user-9",
        json={"choices": {"email": "granted"}, "reason": "signed paper form"},
        headers=ADMIN,
    )
    assert response.status_code == 200, response.text
    assert response.json()["purposes"]["email"]["source"] == "admin"
    events = (await client.get("/consent/user-9/events", headers=ADMIN)).json()["events"]
    assert [(e["purpose"], e["source"]) for e in events] == [("email", "admin")]


async def test_events_are_paged(client: httpx.AsyncClient) -> None:
    await client.put(
        "/consent/user-p",
        json={"choices": {"ads": "granted", "email": "denied"}},
        headers=proof("user-p"),
    )
    await client.delete("/consent/user-p", headers=proof("user-p"))
    first = (await client.get("/consent/user-p/events?limit=3", headers=ADMIN)).json()
    assert [e["seq"] for e in first["events"]] == [1, 2, 3]
    assert first["next_after_seq"] == 3
    rest = (await client.get("/consent/user-p/events?limit=10&after_seq=3", headers=ADMIN)).json()
    assert [e["seq"] for e in rest["events"]] == [4, 5, 6, 7]
    assert rest["next_after_seq"] is None


async def _seed_two_periods(client: httpx.AsyncClient, clock: ManualClock) -> None:
    await client.put(
        "/consent/alice", json={"choices": {"analytics": "granted"}}, headers=proof("alice")
    )
    await client.put("/consent/bob", json={"choices": {"ads": "denied"}}, headers=proof("bob"))
    clock.set(at(2026, 3, 1))
    await client.put("/consent/alice", json={"choices": {"ads": "granted"}}, headers=proof("alice"))
    await client.delete("/consent/bob?purposes=ads", headers=proof("bob"))


JAN = "from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00Z"
MAR = "from=2026-03-01T00:00:00Z&to=2026-04-01T00:00:00Z"


async def test_export_jsonl_for_a_period_verifies_chains(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    await _seed_two_periods(client, clock)
    response = await client.get(f"/admin/consent/export?{MAR}&format=jsonl", headers=ADMIN)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    assert response.headers["x-consent-chain-ok"] == "true"
    lines = [orjson.loads(line) for line in response.content.splitlines()]
    rows, trailer = lines[:-1], lines[-1]
    assert [(r["subject"], r["seq"], r["action"]) for r in rows] == [
        ("alice", 2, "grant"),
        ("bob", 2, "withdraw"),
    ]
    assert all(r["chain_ok"] for r in rows)
    # Both subjects' chains were checked from their first event, outside the period too.
    assert trailer["verification"]["checked"] == 4
    assert trailer["verification"]["exported"] == 2
    assert trailer["verification"]["ok"] is True


async def test_export_csv_and_tampering_report(
    client: httpx.AsyncClient, clock: ManualClock, database: Database
) -> None:
    await _seed_two_periods(client, clock)
    async with database.begin() as conn:
        await conn.execute(
            update(consent_events)
            .where(consent_events.c.subject == "alice", consent_events.c.seq == 1)
            .values(value="denied")
        )
        await conn.execute(
            delete(consent_events).where(
                consent_events.c.subject == "bob", consent_events.c.seq == 2
            )
        )
    response = await client.get(f"/admin/consent/export?{JAN}&format=csv", headers=ADMIN)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["x-consent-chain-ok"] == "false"
    assert response.headers["x-consent-chain-breaks"] == "2"
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [(r["subject"], r["seq"], r["chain_ok"]) for r in rows] == [
        ("alice", "1", "false"),
        ("bob", "1", "true"),
    ]
    report = (await client.get(f"/admin/consent/verify?{JAN}", headers=ADMIN)).json()
    assert report["ok"] is False
    assert sorted((b["subject"], b["seq"], b["reason"]) for b in report["breaks"]) == [
        ("alice", 1, "hash_mismatch"),
        ("bob", 2, "missing_events"),
    ]
    events = (await client.get("/consent/alice/events", headers=ADMIN)).json()
    assert events["verification"]["ok"] is False


@pytest.mark.parametrize(
    "query",
    [
        "from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z",
        "from=yesterday&to=2026-01-01T00:00:00Z",
        "to=2026-01-01T00:00:00Z",
        f"{JAN}&format=xml",
    ],
)
async def test_export_rejects_bad_periods(client: httpx.AsyncClient, query: str) -> None:
    response = await client.get(f"/admin/consent/export?{query}", headers=ADMIN)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_failed"


async def test_openapi_lists_consent_endpoints(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert {"get", "put", "delete"} <= set(paths["/consent/{subject}"])
    assert "post" in paths["/consent"]
    assert "post" in paths["/admin/consent/{subject}/proof"]
    assert {"401", "403"} <= set(paths["/consent/{subject}"]["put"]["responses"])
    assert "/admin/consent/export" in paths


async def _events(client: httpx.AsyncClient, subject: str) -> list[dict[str, Any]]:
    response = await client.get(f"/consent/{subject}/events", headers=ADMIN)
    events: list[dict[str, Any]] = response.json()["events"]
    return events


@pytest.mark.parametrize(
    ("method", "path"),
    [("PUT", "/consent/victim-1"), ("DELETE", "/consent/victim-1")],
)
async def test_writes_without_the_subjects_proof_are_refused(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    await client.put("/consent/victim-1", json=GRANT_ADS, headers=proof("victim-1"))
    token = (await client.get("/consent/victim-1", headers=proof("victim-1"))).json()["token"]
    attempts = [
        ({}, 401, "subject_proof_required"),
        (proof("attacker"), 403, "subject_proof_invalid"),
        ({"X-Consent-Proof": "not-a-proof"}, 403, "subject_proof_invalid"),
        # The consent token is public (GET hands it to anyone): it never proves the subject.
        ({"X-Consent-Proof": token}, 403, "subject_proof_invalid"),
        # Other credentials are not a subject proof either; admins use /admin/consent.
        (ADMIN, 401, "subject_proof_required"),
    ]
    for headers, status, code in attempts:
        response = await client.request(
            method, path, json={"choices": {"ads": "denied"}}, headers=headers
        )
        assert response.status_code == status, (headers, response.text)
        assert response.json()["error"]["code"] == code
    state = (await client.get("/consent/victim-1", headers=proof("victim-1"))).json()
    assert state["purposes"]["ads"]["status"] == "granted"
    assert [e["action"] for e in await _events(client, "victim-1")] == ["grant"]


GRANT_ADS = {"choices": {"ads": "granted"}}


async def test_minted_subject_writes_with_its_cookie_or_its_proof(
    client: httpx.AsyncClient,
) -> None:
    minted = await client.post("/consent")
    assert minted.status_code == 201, minted.text
    body = minted.json()
    subject = body["subject"]
    assert subject.startswith("a-") and len(subject) > 16
    assert body["needs_prompt"] == ["analytics", "ads", "personalization"]
    assert minted.headers["cache-control"] == "no-store"
    set_cookie = minted.headers["set-cookie"].lower()
    assert (
        "httponly" in set_cookie and "samesite=lax" in set_cookie and "path=/consent" in set_cookie
    )
    assert body["subject_proof"] == proof(subject)["X-Consent-Proof"]

    # The cookie the client now holds proves the minted subject ...
    response = await client.put(f"/consent/{subject}", json=GRANT_ADS)
    assert response.status_code == 200, response.text
    assert response.json()["purposes"]["ads"]["status"] == "granted"
    # ... and nobody else.
    other = await client.put("/consent/someone-else", json=GRANT_ADS)
    assert other.status_code == 401
    # A server-side reader with the admin key sees that nothing was written.
    unchanged = await client.get("/consent/someone-else", headers=ADMIN)
    assert unchanged.json()["purposes"]["ads"]["status"] == "unknown"

    # Without cookies (another origin's front end), the proof from the body does the same.
    client.cookies.clear()
    assert (await client.delete(f"/consent/{subject}")).status_code == 401
    withdrawn = await client.delete(
        f"/consent/{subject}", headers={"X-Consent-Proof": body["subject_proof"]}
    )
    assert withdrawn.status_code == 200
    assert withdrawn.json()["purposes"]["ads"]["status"] == "denied"

    again = (await client.post("/consent")).json()["subject"]
    assert again != subject


async def test_forged_cookie_is_not_a_proof(client: httpx.AsyncClient) -> None:
    client.cookies.set("kervan_consent_subject", "victim-2.forgedproof", path="/consent")
    response = await client.put("/consent/victim-2", json=GRANT_ADS)
    assert response.status_code == 401
    assert await _events(client, "victim-2") == []


async def test_admin_issues_proofs_for_the_sites_own_user_ids(client: httpx.AsyncClient) -> None:
    assert (await client.post("/admin/consent/user-42/proof")).status_code == 401
    issued = await client.post("/admin/consent/user-42/proof", headers=ADMIN)
    assert issued.status_code == 200
    assert issued.json() == {
        "subject": "user-42",
        "subject_proof": proof("user-42")["X-Consent-Proof"],
    }
    bad = await client.post("/admin/consent/bad%20id/proof", headers=ADMIN)
    assert bad.status_code == 422


async def test_cross_origin_front_end_may_send_the_proof_header(
    make_settings: Callable[..., Settings], make_client: MakeClient
) -> None:
    settings = make_settings(allowed_origins="https://shop.example")
    async with make_client(settings) as http:
        preflight = await http.options(
            "/consent/a-1",
            headers={
                "Origin": "https://shop.example",
                "Access-Control-Request-Method": "PUT",
                "Access-Control-Request-Headers": "content-type, x-consent-proof",
            },
        )
    assert preflight.status_code == 200
    assert "x-consent-proof" in preflight.headers["access-control-allow-headers"].lower()


async def test_reading_consent_needs_the_proof_or_the_admin_key(client: httpx.AsyncClient) -> None:
    await client.put("/consent/user-r", json=GRANT_ADS, headers=proof("user-r"))
    # User ids are guessable: their consent is not public.
    anonymous = await client.get("/consent/user-r")
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "subject_proof_required"
    assert "token" not in anonymous.text
    assert (await client.get("/consent/user-r", headers=proof("user-s"))).status_code == 403
    assert (await client.get("/consent/user-r", headers={"X-API-Key": "nope"})).status_code == 401
    for headers in (proof("user-r"), ADMIN):
        response = await client.get("/consent/user-r", headers=headers)
        assert response.status_code == 200
        assert response.json()["purposes"]["ads"]["status"] == "granted"
