"""The dashboard routes over HTTP: members (any role) and platform admins read a site, anyone
else gets 404 for its ids or 401 without credentials; bad requests get clear 4xx answers, and
answers match the models /openapi.json documents."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest
from pydantic import BaseModel

from service.tracking.dashboard_schemas import (
    DashboardBreakdownOut,
    DashboardKpisOut,
    DashboardTimelineOut,
    IntentLedgerPageOut,
    LedgerIntentOut,
    TrackedSessionOut,
)
from service.tracking.scope import SiteScope
from tests.tracking.dashboard_seed import add_event, add_intent, add_session

# The people helper's rig (an app on a manual clock, people signed in by the real OTP flow),
# imported to register its fixtures (F401; parameters named after them: F811).
from tests.tracking.people_rig import ADMIN, Rig, make_rig, stack  # noqa: F401


@pytest.fixture
async def rig(make_rig: Callable[..., Any]) -> AsyncIterator[Rig]:  # noqa: F811
    # A loaded test machine lags the loop: degrade mode must not shed the calls under test.
    async with make_rig(degrade_mode="off") as made:
        yield made


def _valid(model: type[BaseModel], body: Any) -> None:
    model.model_validate(body)


async def _seed(app: Rig, site_id: int) -> dict[str, int]:
    scope = SiteScope(site_id=site_id, role="admin", actor="t", time_zone="Europe/Istanbul")
    now = app.now()
    async with app.db.begin() as conn:
        session = await add_session(conn, scope, now - timedelta(hours=2), gclid="gc", page_views=2)
        await add_event(conn, scope, session, now - timedelta(hours=2))
        intent = await add_intent(
            conn, scope, session, now - timedelta(hours=1), status="confirmed", amount="12.5",
            currency="TRY", gclid="gc",
        )  # fmt: skip
        await add_intent(conn, scope, None, now - timedelta(minutes=30), kind="whatsapp")
    return {"session": session, "intent": intent}


async def test_members_and_admins_read_their_sites_dashboard(rig: Rig) -> None:
    site = (await rig.site("Shop"))["id"]
    ids = await _seed(rig, site)
    viewer = await rig.signed_in(site, "viewer@example.com", "viewer")
    base = f"/t/sites/{site}"
    for headers in (viewer, ADMIN):
        kpis = await rig.client.get(f"{base}/dashboard/kpis", headers=headers)
        assert kpis.status_code == 200, kpis.text
        _valid(DashboardKpisOut, kpis.json())
        totals = kpis.json()["totals"]
        assert (totals["sessions"], totals["intents"]["total"]) == (1, 2)
        assert (totals["sales"], totals["sales_value"]) == (1, "12.50")
        assert kpis.json()["ads"]["sessions"] == 1
    today = rig.now().date().isoformat()
    hours = await rig.client.get(
        f"{base}/dashboard/timeline",
        params={"bucket": "hour", "from": today, "to": today, "ads_only": "true"},
        headers=viewer,
    )
    assert hours.status_code == 200, hours.text
    _valid(DashboardTimelineOut, hours.json())
    assert len(hours.json()["buckets"]) == 24
    assert sum(b["sessions"] for b in hours.json()["buckets"]) == 1
    sources = await rig.client.get(
        f"{base}/dashboard/breakdown", params={"dimension": "device", "limit": 1}, headers=viewer
    )
    assert sources.status_code == 200, sources.text
    _valid(DashboardBreakdownOut, sources.json())
    first = await rig.client.get(f"{base}/intents", params={"limit": 1}, headers=viewer)
    assert first.status_code == 200, first.text
    _valid(IntentLedgerPageOut, first.json())
    cursor = first.json()["next_cursor"]
    second = await rig.client.get(
        f"{base}/intents", params={"limit": 1, "cursor": cursor}, headers=viewer
    )
    assert [i["id"] for i in second.json()["items"]] == [ids["intent"]]
    assert second.json()["next_cursor"] is None
    confirmed = await rig.client.get(
        f"{base}/intents", params={"status": "confirmed", "from": today}, headers=viewer
    )
    assert [i["id"] for i in confirmed.json()["items"]] == [ids["intent"]]
    one = await rig.client.get(f"{base}/intents/{ids['intent']}", headers=viewer)
    assert one.status_code == 200, one.text
    _valid(LedgerIntentOut, one.json())
    assert one.json()["session"]["gclid"] == "gc"
    session = await rig.client.get(f"{base}/sessions/{ids['session']}", headers=viewer)
    assert session.status_code == 200, session.text
    _valid(TrackedSessionOut, session.json())
    assert len(session.json()["events"]) == 1


async def test_another_sites_ids_are_404_and_strangers_401(rig: Rig) -> None:
    mine = (await rig.site("Mine"))["id"]
    theirs = (await rig.site("Theirs"))["id"]
    ids = await _seed(rig, theirs)
    member = await rig.signed_in(mine, "member@example.com", "owner")
    paths = [
        "/dashboard/kpis",
        "/dashboard/timeline",
        "/dashboard/breakdown?dimension=source",
        "/intents",
        f"/intents/{ids['intent']}",
        f"/sessions/{ids['session']}",
    ]
    for path in paths:
        other = await rig.client.get(f"/t/sites/{theirs}{path}", headers=member)
        assert other.status_code == 404, (path, other.text)
        anonymous = await rig.client.get(f"/t/sites/{theirs}{path}")
        assert anonymous.status_code == 401, (path, anonymous.text)
        assert anonymous.headers["www-authenticate"].startswith("Bearer")
    # Their intent and session ids under my site: 404 as well, never the row.
    for path in (f"/intents/{ids['intent']}", f"/sessions/{ids['session']}"):
        crossed = await rig.client.get(f"/t/sites/{mine}{path}", headers=member)
        assert crossed.status_code == 404, crossed.text


async def test_bad_requests_get_clear_answers(rig: Rig) -> None:
    site = (await rig.site("Shop"))["id"]
    base = f"/t/sites/{site}"

    async def error(path: str, **params: str) -> tuple[int, str, str]:
        answer = await rig.client.get(f"{base}{path}", params=params, headers=ADMIN)
        body = answer.json()["error"]
        return answer.status_code, body["code"], body["message"]

    assert (await error("/dashboard/kpis", **{"from": "2026-02-02", "to": "2026-02-01"}))[:2] == (
        422,
        "validation_failed",
    )
    status, _, message = await error(
        "/dashboard/timeline", bucket="hour", **{"from": "2026-01-01", "to": "2026-03-01"}
    )
    assert status == 422 and "hour buckets cover at most 31 days" in message
    assert (await error("/dashboard/kpis", **{"from": "2026-02-30"}))[0] == 422
    assert (await error("/dashboard/breakdown"))[0] == 422  # no dimension
    assert (await error("/dashboard/breakdown", dimension="city"))[0] == 422
    assert (await error("/intents", cursor="bm90LWEtY3Vyc29y"))[:2] == (400, "invalid_cursor")
    assert (await error("/intents", status="lost"))[0] == 422
    assert (await error("/intents", limit="0"))[0] == 422
    for path in ("/t/sites/0/dashboard/kpis", "/t/sites/x1/intents", f"{base}/intents/1e3"):
        answer = await rig.client.get(path, headers=ADMIN)
        assert answer.status_code == 404, (path, answer.text)
