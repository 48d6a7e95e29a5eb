# ruff: noqa: F811  (fixtures imported from tests/tracking/people_rig.py are redefined as parameters)
"""Calls from a site's phone system: the per-site token (owners make it, shown once, only its
digest kept), matching to the closest pending phone intent in the window before the call,
unmatched calls kept, a resent call stored and matched once."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from service.db.tables.tracking import sites
from tests.tracking.people_rig import ADMIN, Rig, bearer, make_rig, rig, stack  # noqa: F401


async def _site_with_token(rig: Rig, name: str = "Shop") -> tuple[int, str]:
    site = await rig.site(name)
    made = await rig.client.post(f"/t/sites/{site['id']}/calls-token", headers=ADMIN)
    assert made.status_code == 201, made.text
    token: str = made.json()["token"]
    return site["id"], token


def _call(at: Any, caller: str = "+905321234567", **extra: Any) -> dict[str, Any]:
    return {"caller": caller, "at": at.isoformat(), **extra}


async def test_owners_make_the_token_and_only_its_digest_is_kept(rig: Rig) -> None:
    site = await rig.site("Shop")
    sid = site["id"]
    owner = await rig.signed_in(sid, "owner@example.com", "owner")
    made = await rig.client.post(f"/t/sites/{sid}/calls-token", headers=owner)
    assert made.status_code == 201 and made.headers["cache-control"] == "no-store"
    token = made.json()["token"]
    assert token.startswith(f"kc_{sid}_")
    async with rig.db.connect() as conn:
        config = (await conn.execute(select(sites.c.config).where(sites.c.id == sid))).scalar()
    assert token not in str(config) and len(config["calls_token"]["sha256"]) == 64
    shown = (await rig.client.get(f"/t/sites/{sid}", headers=owner)).json()
    assert shown["calls_token_set"] is True and "calls_token" not in shown["config"]

    reported = await rig.client.post("/t/calls", json=_call(rig.now()), headers=bearer(token))
    assert reported.status_code == 201, reported.text
    # A new token replaces the old one at once.
    newer = (await rig.client.post(f"/t/sites/{sid}/calls-token", headers=owner)).json()["token"]
    assert newer != token
    stale = await rig.client.post("/t/calls", json=_call(rig.now()), headers=bearer(token))
    assert stale.status_code == 401
    [first, second] = await rig.audit("site.calls_token.created")
    assert (first["details"], second["details"]) == ({"replaced": False}, {"replaced": True})


async def test_wrong_tokens_are_refused(rig: Rig) -> None:
    sid, token = await _site_with_token(rig)
    other_sid, other_token = await _site_with_token(rig, "Other")
    person = await rig.signed_in(sid, "owner@example.com", "owner")
    forged = f"kc_{other_sid}_{token.rsplit('_', 1)[1]}"  # site A's secret under site B's id
    for headers in (
        {},
        bearer("kc_1_short"),
        bearer(forged),
        bearer(token[:-1] + ("A" if token[-1] != "A" else "B")),
        bearer(f"kc_999999_{token.rsplit('_', 1)[1]}"),
        person,  # a person's session is no calls token
        ADMIN,
    ):
        answer = await rig.client.post("/t/calls", json=_call(rig.now()), headers=headers)
        assert answer.status_code == 401, (headers, answer.text)
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    # A wrong token is refused before its body is read: no validation detail leaks.
    bad = await rig.client.post("/t/calls", json={"x": 1}, headers=bearer("nope"))
    assert bad.status_code == 401
    assert other_token != token


async def test_a_call_matches_the_closest_pending_phone_intent_before_it(rig: Rig) -> None:
    sid, token = await _site_with_token(rig)
    other_sid, _ = await _site_with_token(rig, "Other")
    window = rig.runtime.settings.tracking_call_match_minutes
    too_old = await rig.intent(sid, ago=timedelta(minutes=window, seconds=1))
    older = await rig.intent(sid, ago=timedelta(minutes=10))
    closest = await rig.intent(sid, ago=timedelta(minutes=2))
    await rig.intent(sid, ago=timedelta(minutes=1), kind="whatsapp", target="https://wa.me/905")
    await rig.intent(sid, ago=timedelta(minutes=1), status="junk")
    await rig.intent(other_sid, ago=timedelta(minutes=1))  # another site's, closer
    after = await rig.intent(sid, ago=timedelta(minutes=-1))  # created after the call

    reported = await rig.client.post(
        "/t/calls", json=_call(rig.now(), duration_seconds=95), headers=bearer(token)
    )
    assert reported.status_code == 201, reported.text
    body = reported.json()
    assert body["matched"] is True and body["duplicate"] is False
    assert body["call"]["intent_id"] == closest and body["call"]["duration_seconds"] == 95
    row = await rig.intent_row(sid, closest)
    assert row.call_number == "+905321234567" and row.call_at == rig.now()
    assert row.status == "pending"  # an owner or editor seals it

    # The next call takes the next closest; an intent is matched to one call only.
    rig.clock.advance(1)
    second = await rig.client.post(
        "/t/calls", json=_call(rig.now(), caller="+4915112345678"), headers=bearer(token)
    )
    assert second.json()["call"]["intent_id"] == older
    rig.clock.advance(1)
    third = await rig.client.post(
        "/t/calls", json=_call(rig.now(), caller="+4915112345679"), headers=bearer(token)
    )
    assert third.status_code == 201 and third.json()["matched"] is False
    for untouched in (too_old, after):
        assert (await rig.intent_row(sid, untouched)).call_at is None

    # Owners see every call, matched or not, newest first.
    listed = await rig.client.get(f"/t/sites/{sid}/calls", headers=ADMIN)
    assert [c["intent_id"] for c in listed.json()["items"]] == [None, older, closest]
    unmatched = await rig.client.get(f"/t/sites/{sid}/calls?matched=false", headers=ADMIN)
    assert [c["caller"] for c in unmatched.json()["items"]] == ["+4915112345679"]
    page = await rig.client.get(f"/t/sites/{sid}/calls?limit=2", headers=ADMIN)
    rest = await rig.client.get(
        f"/t/sites/{sid}/calls?before={page.json()['next_before']}", headers=ADMIN
    )
    assert [c["intent_id"] for c in rest.json()["items"]] == [closest]
    assert (await rig.client.get(f"/t/sites/{other_sid}/calls", headers=ADMIN)).json()[
        "items"
    ] == []


async def test_the_dialled_number_picks_among_the_sites_numbers(rig: Rig) -> None:
    sid, token = await _site_with_token(rig)
    shop = await rig.intent(sid, target="tel:0212 555 11 22", ago=timedelta(minutes=5))
    await rig.intent(sid, target="tel:+905551112233", ago=timedelta(minutes=1))
    answer = await rig.client.post(
        "/t/calls", json=_call(rig.now(), callee="+902125551122"), headers=bearer(token)
    )
    assert answer.json()["call"]["intent_id"] == shop
    assert answer.json()["call"]["callee"] == "+902125551122"


async def test_a_resent_call_is_stored_and_matched_once(rig: Rig) -> None:
    sid, token = await _site_with_token(rig)
    first_intent = await rig.intent(sid, ago=timedelta(minutes=3))
    second_intent = await rig.intent(sid, ago=timedelta(minutes=4))
    at = rig.now()
    first = await rig.client.post("/t/calls", json=_call(at), headers=bearer(token))
    # The same call with another offset is the same instant.
    resent = await rig.client.post(
        "/t/calls",
        json={"caller": "+905321234567", "at": at.astimezone().isoformat()},
        headers=bearer(token),
    )
    assert first.status_code == 201 and resent.status_code == 200
    assert resent.json()["duplicate"] is True
    assert resent.json()["call"] == first.json()["call"]
    assert first.json()["call"]["intent_id"] == first_intent
    assert (await rig.intent_row(sid, second_intent)).call_at is None
    listed = await rig.client.get(f"/t/sites/{sid}/calls", headers=ADMIN)
    assert len(listed.json()["items"]) == 1


async def test_concurrent_calls_never_share_an_intent(rig: Rig) -> None:
    sid, token = await _site_with_token(rig)
    intents = [await rig.intent(sid, ago=timedelta(minutes=m)) for m in (1, 2, 3)]
    callers = [f"+90532123456{n}" for n in range(5)]
    answers = await asyncio.gather(
        *(
            rig.client.post("/t/calls", json=_call(rig.now(), caller=c), headers=bearer(token))
            for c in callers
        )
    )
    assert {a.status_code for a in answers} == {201}
    matched = [a.json()["call"]["intent_id"] for a in answers]
    assert sorted(m for m in matched if m is not None) == sorted(intents)
    assert matched.count(None) == 2


async def test_bad_calls_are_refused_clearly(rig: Rig) -> None:
    sid, token = await _site_with_token(rig)
    now = rig.now()
    for body in (
        {"caller": "05321234567", "at": now.isoformat()},  # not E.164
        {"caller": "+905321234567", "at": now.replace(tzinfo=None).isoformat()},  # no offset
        {"caller": "+905321234567", "at": (now + timedelta(minutes=6)).isoformat()},
        {"caller": "+905321234567", "at": (now - timedelta(days=400)).isoformat()},
        {"caller": "+905321234567", "at": "0001-01-01T00:00:00+14:00"},
        {"caller": "+905321234567", "at": now.isoformat(), "duration_seconds": -1},
        {"caller": "+905321234567", "at": now.isoformat(), "extra": True},
    ):
        answer = await rig.client.post("/t/calls", json=body, headers=bearer(token))
        assert answer.status_code == 422, (body, answer.text)
    assert (await rig.client.get(f"/t/sites/{sid}/calls", headers=ADMIN)).json()["items"] == []
