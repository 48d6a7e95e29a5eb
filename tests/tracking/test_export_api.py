"""The CSV export routes over HTTP (``GET /t/sites/{site_id}/export/{kind}.csv``): a streamed
CSV attachment for owners and platform admins, audited; JSON 4xx before any byte for everyone
and everything else."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest

from service.tracking.export import AUDIT_ACTION
from tests.tracking.people_rig import ADMIN, Rig, make_rig, stack  # noqa: F401


@pytest.fixture
async def rig(make_rig: Callable[..., Any]) -> AsyncIterator[Rig]:  # noqa: F811
    async with make_rig(degrade_mode="off") as made:
        yield made


def _today(rig: Rig) -> str:
    return rig.now().date().isoformat()


async def test_owners_and_admins_download_a_csv_attachment(rig: Rig) -> None:
    site = (await rig.site("Shop"))["id"]
    session = await rig.tracking_session(site)
    intent = await rig.intent(
        site, session_id=session, target="=cmd|' /C calc'!A0", ago=timedelta(minutes=5)
    )
    owner = await rig.signed_in(site, "owner@example.com", "owner")
    day = _today(rig)
    for headers in (owner, ADMIN):
        answer = await rig.client.get(
            f"/t/sites/{site}/export/intents.csv",
            params={"from": day, "to": day},
            headers=headers,
        )
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "text/csv; charset=utf-8"
        assert answer.headers["content-disposition"] == (
            f'attachment; filename="site-{site}-intents-{day}-{day}.csv"'
        )
        assert "content-length" not in answer.headers
        assert answer.headers["cache-control"] == "no-store"
        rows = list(csv.DictReader(io.StringIO(answer.text, newline="")))
        assert [int(r["id"]) for r in rows] == [intent]
        assert rows[0]["target"] == "'=cmd|' /C calc'!A0"
    for kind in ("sessions", "conversions"):
        answer = await rig.client.get(
            f"/t/sites/{site}/export/{kind}.csv", params={"from": day, "to": day}, headers=owner
        )
        assert answer.status_code == 200, answer.text
        assert answer.text.splitlines()[0].startswith(
            "id,started_at (Europe/Istanbul)," if kind == "sessions" else "intent_id,"
        )
    audited = await rig.audit(AUDIT_ACTION)
    assert [(r["actor"].split(":")[0], r["details"]["kind"]) for r in audited] == [
        ("person", "intents"),
        ("admin", "intents"),
        ("person", "sessions"),
        ("person", "conversions"),
    ]
    assert {r["subject"] for r in audited} == {f"site:{site}"}
    assert audited[0]["details"]["from"] == day and audited[0]["details"]["site_id"] == site


async def test_editors_viewers_strangers_and_the_anonymous_are_refused(rig: Rig) -> None:
    mine = (await rig.site("Mine"))["id"]
    theirs = (await rig.site("Theirs"))["id"]
    await rig.intent(theirs, target="tel:+491709999999")
    params = {"from": _today(rig), "to": _today(rig)}
    owner_of_mine = await rig.signed_in(mine, "owner@mine.example", "owner")
    editor = await rig.signed_in(mine, "editor@mine.example", "editor")
    viewer = await rig.signed_in(mine, "viewer@mine.example", "viewer")
    for headers, status, code in (
        (editor, 403, "forbidden"),
        (viewer, 403, "forbidden"),
        (owner_of_mine, 404, "not_found"),
        ({}, 401, "unauthorized"),
    ):
        site = theirs if headers is owner_of_mine else mine
        for kind in ("intents", "sessions", "conversions"):
            answer = await rig.client.get(
                f"/t/sites/{site}/export/{kind}.csv", params=params, headers=headers
            )
            assert answer.status_code == status, (kind, answer.text)
            assert answer.headers["content-type"] == "application/json"
            assert answer.json()["error"]["code"] == code
            assert "+491709999999" not in answer.text
    assert await rig.audit(AUDIT_ACTION) == []


async def test_bad_input_is_a_json_4xx_before_any_byte(rig: Rig) -> None:
    site = (await rig.site("Shop"))["id"]
    base = f"/t/sites/{site}/export"

    async def error(path: str, **params: str) -> tuple[int, str]:
        answer = await rig.client.get(path, params=params, headers=ADMIN)
        assert answer.headers["content-type"] == "application/json", answer.text
        return answer.status_code, answer.json()["error"]["code"]

    ok = {"from": "2026-01-01", "to": "2026-01-31"}
    invalid = (422, "validation_failed")
    assert await error(f"{base}/intents.csv") == invalid
    assert await error(f"{base}/intents.csv", **{"from": "2026-01-01"}) == invalid
    assert await error(f"{base}/intents.csv", **{"from": "yesterday", "to": "2026-01-01"}) == (
        invalid
    )
    assert await error(f"{base}/intents.csv", **{"from": "2026-02-02", "to": "2026-02-01"}) == (
        invalid
    )
    # 367 days (2024 is a leap year).
    assert await error(f"{base}/sessions.csv", **{"from": "2024-01-01", "to": "2025-01-01"}) == (
        invalid
    )
    assert await error(f"{base}/intents.csv", **ok, extra="1") == invalid
    assert (await error(f"{base}/events.csv", **ok))[0] == 404
    assert (await error("/t/sites/abc/export/intents.csv", **ok))[0] == 404
    assert await error("/t/sites/999999/export/intents.csv", **ok) == (404, "not_found")
    assert await rig.audit(AUDIT_ACTION) == []


async def test_the_routes_are_documented(rig: Rig) -> None:
    spec = (await rig.client.get("/openapi.json")).json()
    for kind in ("intents", "sessions", "conversions"):
        op = spec["paths"][f"/t/sites/{{site_id}}/export/{kind}.csv"]["get"]
        assert set(op["responses"]["200"]["content"]) == {"text/csv"}
        assert {"401", "403", "404", "422"} <= set(op["responses"])
        names = {p["name"]: p for p in op["parameters"]}
        assert names["from"]["required"] and names["to"]["required"]
        assert names["site_id"]["in"] == "path"


async def test_exports_are_paced_per_signed_in_caller(make_rig: Callable[..., Any]) -> None:  # noqa: F811
    async with make_rig(degrade_mode="off", ratelimit_policies="export=2/hour burst 2") as rig:
        site = (await rig.site("Shop"))["id"]
        owner = await rig.signed_in(site, "owner@example.com", "owner")
        url = f"/t/sites/{site}/export/intents.csv"
        day = {"from": _today(rig), "to": _today(rig)}
        answers = [await rig.client.get(url, params=day, headers=owner) for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 429]
        assert answers[0].headers["ratelimit-policy"].startswith('"export";q=2')
        refused = answers[2].json()["error"]
        assert refused["code"] == "rate_limited" and refused["details"]["policies"] == ["export"]
        assert int(answers[2].headers["retry-after"]) > 0
        # Another caller has a quota of its own; the anonymous are refused by the guard.
        assert (await rig.client.get(url, params=day, headers=ADMIN)).status_code == 200
        assert (await rig.client.get(url, params=day)).status_code == 401
        assert len(await rig.audit(AUDIT_ACTION)) == 3  # the refused export was not audited
