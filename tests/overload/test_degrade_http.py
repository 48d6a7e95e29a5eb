"""Degrade mode at the edge: while shedding, prefetches and dashboard queries get 503 with
Retry-After and the standard envelope; everything else is served; /ready and /metrics show it."""

from __future__ import annotations

from typing import Any

import pytest

from core.images.formats import OutputFormat
from service.errors import ApiError
from service.images.render import EncodeOptions
from service.images.variants import VariantCache, VariantKey
from service.metrics import REGISTRY
from service.overload.monitor import OverloadMonitor
from service.overload.priority import low_priority_kind
from service.overload.settings import DegradeSettings

PREFETCH = {"Sec-Purpose": "prefetch;prerender"}


def shed(kind: str) -> float:
    return REGISTRY.get_sample_value("kervan_shed_total", {"kind": kind}) or 0.0


def test_which_requests_are_low_priority() -> None:
    assert low_priority_kind("/", [(b"sec-purpose", b"prefetch")]) == "prefetch"
    assert low_priority_kind("/x", [(b"purpose", b"Prefetch")]) == "prefetch"
    assert low_priority_kind("/t/sites/3/dashboard/kpis", []) == "dashboard"
    for path in ("/webhooks/wa", "/ws/support", "/t/sync", "/t/sites/3/intents", "/admin/wa/send"):
        assert low_priority_kind(path, [(b"accept", b"*/*")]) is None


async def test_shedding_refuses_prefetches_and_serves_the_rest(
    make_client: Any, make_settings: Any
) -> None:
    before = shed("prefetch")
    async with make_client(
        make_settings(degrade_mode="on", degrade_retry_after_seconds=7)
    ) as client:
        refused = await client.get("/openapi.json", headers=PREFETCH)
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "7"
        assert refused.json()["error"]["code"] == "overloaded"
        assert refused.json()["error"]["details"] == {"kind": "prefetch"}
        assert (await client.get("/openapi.json")).status_code == 200
        assert (await client.get("/health")).status_code == 200
        dashboard = await client.get("/t/sites/1/dashboard/kpis")
        assert dashboard.status_code == 503
        ready = (await client.get("/ready")).json()
        assert ready["info"]["degrade"]["shedding"] is True
        assert ready["info"]["degrade"]["mode"] == "on"
    assert shed("prefetch") == before + 1


async def test_nothing_is_shed_when_off(make_client: Any, make_settings: Any) -> None:
    async with make_client(make_settings(degrade_mode="off")) as client:
        assert (await client.get("/openapi.json", headers=PREFETCH)).status_code == 200
        ready = (await client.get("/ready")).json()
        assert ready["info"]["degrade"]["shedding"] is False


async def test_a_variant_not_rendered_yet_is_shed_and_a_cached_one_served(tmp_path: Any) -> None:
    cache = VariantCache(tmp_path, max_concurrent_renders=1)
    monitor = OverloadMonitor(DegradeSettings(degrade_mode="on"))
    renders = 0

    def refuse() -> None:
        raise monitor.refuse("image_render")

    async def original(_key: str) -> bytes:
        nonlocal renders
        renders += 1
        raise AssertionError("no render while shedding")

    key = VariantKey("a" * 64, 320, OutputFormat.JPEG, EncodeOptions(quality=80))
    with pytest.raises(ApiError) as refused:
        await cache.get(key, original, before_render=refuse)
    assert refused.value.status == 503 and renders == 0
    cache._write(key, b"rendered-before")
    assert await cache.get(key, original, before_render=refuse) == b"rendered-before"


def test_background_work_is_skipped_while_shedding() -> None:
    before = shed("speculation_refresh")
    assert OverloadMonitor(DegradeSettings(degrade_mode="on")).skip("speculation_refresh")
    assert not OverloadMonitor(DegradeSettings(degrade_mode="off")).skip("speculation_refresh")
    assert shed("speculation_refresh") == before + 1
