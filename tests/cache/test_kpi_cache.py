# ruff: noqa: F811  (fixtures imported from tests/tracking/people_rig.py are redefined as parameters)
"""Tracking dashboard KPIs through the cache: loaded once per site and range, then served to
every member; new traffic shows when the short TTL ends (on the test clock); a seal or a status
change shows at once; one site's entries and invalidations never touch another's."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from service.metrics import REGISTRY
from service.tracking.dashboard_cache import KPI_CACHE
from tests.tracking.people_rig import ADMIN, Rig, make_rig, stack  # noqa: F401


@pytest.fixture
async def rig(make_rig: Callable[..., Any]) -> AsyncIterator[Rig]:
    # A loaded test machine lags the loop: degrade mode must not shed the calls under test.
    async with make_rig(degrade_mode="off") as made:
        yield made


def outcome(name: str) -> float:
    labels = {"cache": KPI_CACHE, "outcome": name}
    return REGISTRY.get_sample_value("kervan_cache_requests_total", labels) or 0.0


async def totals(rig: Rig, site: int, headers: dict[str, str] = ADMIN) -> dict[str, Any]:
    response = await rig.client.get(f"/t/sites/{site}/dashboard/kpis", headers=headers)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()["totals"]
    return found


async def test_kpis_are_loaded_once_for_every_member_then_age_out_with_the_ttl(
    rig: Rig,
) -> None:
    site = (await rig.site("Shop"))["id"]
    viewer = await rig.signed_in(site, "viewer@example.com", "viewer")
    await rig.tracking_session(site)
    misses, hits = outcome("miss"), outcome("hit")
    assert (await totals(rig, site))["sessions"] == 1
    assert outcome("miss") == misses + 1
    # Another member (another role) gets the same entry: the figures do not depend on who asks.
    assert (await totals(rig, site, viewer))["sessions"] == 1
    assert outcome("hit") == hits + 1
    # New traffic (the ingest drops nothing) shows once the TTL has passed.
    await rig.tracking_session(site, visitor="v_visitor00000002")
    ttl = rig.runtime.settings.cache_dashboard_kpis_ttl_seconds
    rig.clock.advance(ttl - 1)
    assert (await totals(rig, site))["sessions"] == 1
    rig.clock.advance(1)
    assert (await totals(rig, site))["sessions"] == 2


async def test_a_seal_shows_in_the_kpis_at_once(rig: Rig) -> None:
    site = (await rig.site("Shop"))["id"]
    intent = await rig.intent(site)
    before = await totals(rig, site)
    assert (before["intents"]["total"], before["sales"]) == (1, 0)
    sealed = await rig.client.post(
        f"/t/sites/{site}/intents/{intent}/seal", json={"amount": "99.90"}, headers=ADMIN
    )
    assert sealed.status_code == 200, sealed.text
    after = await totals(rig, site)
    assert (after["sales"], after["sales_value"]) == (1, "99.90")


async def test_a_status_change_drops_the_sites_kpis(rig: Rig) -> None:
    site = (await rig.site("Shop"))["id"]
    intent = await rig.intent(site)
    await totals(rig, site)
    await totals(rig, site)  # cached now
    # The figures count intents whatever their status (only a seal changes them), so the drop
    # shows as a fresh load.
    misses = outcome("miss")
    junk = await rig.client.post(f"/t/sites/{site}/intents/{intent}/junk", headers=ADMIN)
    assert junk.status_code == 200, junk.text
    assert (await totals(rig, site))["intents"]["total"] == 1
    assert outcome("miss") == misses + 1
    changed = await rig.client.patch(
        f"/t/sites/{site}/intents/{intent}", json={"status": "pending"}, headers=ADMIN
    )
    assert changed.status_code == 200, changed.text
    await totals(rig, site)
    assert outcome("miss") == misses + 2


async def test_sites_are_cached_and_dropped_apart(rig: Rig) -> None:
    shop = (await rig.site("Shop"))["id"]
    other = (await rig.site("Other"))["id"]
    await rig.tracking_session(shop)
    intent = await rig.intent(shop)
    await rig.intent(other)
    await rig.intent(other, kind="whatsapp", target="https://wa.me/905551112233")
    shop_first, other_first = await totals(rig, shop), await totals(rig, other)
    assert (shop_first["sessions"], shop_first["intents"]["total"]) == (1, 1)
    assert (other_first["sessions"], other_first["intents"]["total"]) == (0, 2)
    # The shop's seal drops the shop's entry only: the other site is still a hit.
    sealed = await rig.client.post(
        f"/t/sites/{shop}/intents/{intent}/seal", json={"amount": "5"}, headers=ADMIN
    )
    assert sealed.status_code == 200, sealed.text
    hits = outcome("hit")
    assert await totals(rig, other) == other_first
    assert outcome("hit") == hits + 1
    assert (await totals(rig, shop))["sales"] == 1
    assert outcome("hit") == hits + 1
    # A member of one site never reads the other's entry: 404 before any cache.
    member = await rig.signed_in(shop, "member@example.com", "owner")
    refused = await rig.client.get(f"/t/sites/{other}/dashboard/kpis", headers=member)
    assert refused.status_code == 404
