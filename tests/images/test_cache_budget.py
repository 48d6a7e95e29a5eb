"""The disk budget of the derived image caches: least recently used out, made again on demand."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import cast

import pytest

from core.images.formats import OutputFormat
from service.db import Database
from service.images import cache_budget
from service.images.cache_budget import CacheJanitor, sweep, touch_if_stale
from service.images.facility import ImagesFacility
from service.images.render import EncodeOptions
from service.images.storage import DiskOriginalStore
from service.images.tiles import OriginalLoader, TileStore
from service.images.variants import VariantCache, VariantKey
from service.metrics import REGISTRY
from service.settings import Settings
from tests.images import samples

NOW = 1_700_000_000.0  # in the past: the touches below use the real clock
KEYS = [f"{i:02x}" + "0" * 62 for i in range(6)]


def write(path: Path, size: int, used: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    os.utime(path, (used, used))
    return path


def variant(root: Path, key: str, name: str, size: int, used: float) -> Path:
    return write(root / "variants" / key[:2] / key / name, size, used)


def pyramid(root: Path, key: str, tiles: int, tile_bytes: int, used: float) -> Path:
    directory = root / "tiles" / key[:2] / key / "iiif"
    for index in range(tiles):
        write(directory / f"0,0,{index},1" / "max" / "0" / "default.jpg", tile_bytes, used)
    write(directory / "info.json", 100, used)
    return directory


def run(root: Path, budget: int) -> cache_budget.SweepReport:
    return sweep(root / "variants", root / "tiles", budget, now=NOW)


def test_under_budget_nothing_is_dropped(tmp_path: Path) -> None:
    kept = [variant(tmp_path, KEYS[i], "320.avif", 1000, NOW - i) for i in range(3)]
    report = run(tmp_path, 3000)
    assert (report.bytes_before, report.bytes_after, report.evicted) == (3000, 3000, 0)
    assert all(path.exists() for path in kept)


def test_least_recently_used_go_first_down_to_the_low_water_mark(tmp_path: Path) -> None:
    # Five 1,000-byte variants, used 5..1 hours ago; budget 4,000 -> keep <= 3,600 bytes.
    paths = [
        variant(tmp_path, KEYS[i], f"{320 + i}.webp", 1000, NOW - (5 - i) * 3600) for i in range(5)
    ]
    report = run(tmp_path, 4000)
    assert (report.bytes_before, report.bytes_after, report.evicted) == (5000, 3000, 2)
    assert [path.exists() for path in paths] == [False, False, True, True, True]
    # At the bound now: the next pass drops nothing.
    assert run(tmp_path, 4000).evicted == 0


def test_a_pyramid_is_one_entry_dropped_whole(tmp_path: Path) -> None:
    old_pyramid = pyramid(tmp_path, KEYS[0], tiles=4, tile_bytes=500, used=NOW - 7200)
    fresh_variant = variant(tmp_path, KEYS[1], "640.avif", 1500, NOW - 60)
    report = run(tmp_path, 3000)
    assert report.bytes_before == 4 * 500 + 100 + 1500
    assert report.evicted == 1 and report.bytes_after == 1500
    assert not old_pyramid.exists() and fresh_variant.exists()
    # No half-deleted pyramid or trash directory is left behind.
    assert os.listdir(old_pyramid.parent) == []


def test_recent_use_protects_an_entry_whatever_its_age_on_disk(tmp_path: Path) -> None:
    used_recently = pyramid(tmp_path, KEYS[0], tiles=2, tile_bytes=1000, used=NOW - 30)
    idle = variant(tmp_path, KEYS[1], "320.jpeg", 1000, NOW - 86_400)
    run(tmp_path, 2500)
    assert used_recently.exists() and not idle.exists()


def test_stale_temporaries_are_removed_and_fresh_ones_kept(tmp_path: Path) -> None:
    key_dir = tmp_path / "variants" / KEYS[0][:2] / KEYS[0]
    stale = write(key_dir / ".tmp-abc", 5000, NOW - 2 * cache_budget.STALE_TEMP_SECONDS)
    fresh = write(key_dir / ".tmp-def", 5000, NOW - 5)
    scratch = tmp_path / "tiles" / KEYS[1][:2] / KEYS[1] / ".tiles-xyz"
    write(scratch / "iiif" / "info.json", 10, NOW - 2 * cache_budget.STALE_TEMP_SECONDS)
    os.utime(scratch, (NOW - 7200, NOW - 7200))
    report = run(tmp_path, 10**9)
    assert report.stale_temps == 2 and report.bytes_before == 0  # temporaries are no entries
    assert not stale.exists() and not scratch.exists() and fresh.exists()


def test_touch_writes_only_when_the_last_touch_is_old(tmp_path: Path) -> None:
    path = write(tmp_path / "f", 1, NOW - 60)
    touch_if_stale(path, NOW - 60, NOW)
    assert path.stat().st_mtime == NOW - 60
    touch_if_stale(path, NOW - 60, NOW - 60 + cache_budget.TOUCH_INTERVAL_SECONDS + 1)
    assert path.stat().st_mtime > NOW  # the real clock: now, not the simulated time
    touch_if_stale(tmp_path / "gone", 0, NOW)  # a vanished file is no error


async def test_variant_hit_marks_use_and_an_evicted_variant_is_rendered_again(
    tmp_path: Path,
) -> None:
    store = DiskOriginalStore(tmp_path / "originals")
    key = await store.put(samples.jpeg(800, 600))
    cache = VariantCache(tmp_path / "variants", max_concurrent_renders=1)
    wanted = VariantKey(key, 320, OutputFormat.JPEG, EncodeOptions(quality=70))
    first = await cache.get(wanted, store.get)
    long_ago = NOW - 10 * 86_400
    os.utime(cache.path(wanted), (long_ago, long_ago))
    assert await cache.get(wanted, store.get) == first
    assert cache.path(wanted).stat().st_mtime > long_ago  # the hit counted as a use
    assert cache.renders == 1
    assert sweep(tmp_path / "variants", tmp_path / "tiles", budget=1).evicted == 1
    assert not cache.path(wanted).exists()
    assert await cache.get(wanted, store.get) == first  # same bytes, rendered again
    assert cache.renders == 2


async def test_tile_read_survives_its_pyramid_being_dropped_meanwhile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = DiskOriginalStore(tmp_path / "originals")
    key = await store.put(samples.jpeg(1200, 900))
    tiles = TileStore(tmp_path / "tiles", tile_size=512, quality=70)
    real_ensure = tiles.ensure
    dropped = False

    async def ensure_then_sweep(content_key: str, load: OriginalLoader) -> Path:
        nonlocal dropped
        directory = await real_ensure(content_key, load)
        if not dropped:  # the janitor runs between finding the pyramid and reading a tile
            dropped = True
            assert sweep(tmp_path / "variants", tmp_path / "tiles", budget=1).evicted == 1
        return directory

    monkeypatch.setattr(tiles, "ensure", ensure_then_sweep)
    tile = await tiles.tile(key, "0,0,512,512", "512,512", "0", "default.jpg", store.get)
    assert tile[:2] == b"\xff\xd8" and tiles.builds == 2


async def test_janitor_sweeps_at_start_and_reports_the_size(tmp_path: Path) -> None:
    for i in range(4):
        variant(tmp_path, KEYS[i], "320.avif", 1000, NOW - (4 - i))
    janitor = CacheJanitor(tmp_path / "variants", tmp_path / "tiles", budget=2500, interval=3600)
    before = REGISTRY.get_sample_value("kervan_image_cache_evictions_total", {"kind": "variant"})
    await janitor.start()
    try:
        for _ in range(200):
            if janitor.last is not None:
                break
            await asyncio.sleep(0.01)
    finally:
        await janitor.stop()
    assert janitor.last is not None and janitor.last.bytes_after == 2000
    assert REGISTRY.get_sample_value("kervan_image_cache_bytes") == 2000
    after = REGISTRY.get_sample_value("kervan_image_cache_evictions_total", {"kind": "variant"})
    assert after == (before or 0) + 2


def test_the_budget_setting_decides_whether_a_janitor_runs(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    def facility(**overrides: object) -> ImagesFacility:
        settings = make_settings(images_dir=tmp_path, **overrides)
        return ImagesFacility(settings, cast(Database, None))  # the database is not touched

    assert facility().janitor is not None  # bounded by default
    assert facility(images_cache_max_bytes=0).janitor is None
