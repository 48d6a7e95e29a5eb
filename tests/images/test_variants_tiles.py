"""Disk store, variant cache (single flight, bounded renders) and IIIF level 0 tiles."""

from __future__ import annotations

import asyncio
import io
import threading
from pathlib import Path

import pytest
from PIL import Image

from core.errors import NotFound
from core.images.formats import OutputFormat
from service.images import render as render_module
from service.images.render import EncodeOptions
from service.images.storage import DiskOriginalStore, content_key
from service.images.tiles import TileStore
from service.images.variants import VariantCache, VariantKey
from tests.images import samples


async def test_disk_store_is_content_addressed(tmp_path: Path) -> None:
    store = DiskOriginalStore(tmp_path)
    data = samples.jpeg(64, 48)
    key = await store.put(data)
    assert key == content_key(data)
    assert await store.put(data) == key
    assert await store.get(key) == data
    assert await store.exists(key)
    with pytest.raises(NotFound):
        await store.get("0" * 64)
    with pytest.raises(NotFound):
        await store.get("../../etc/passwd")


async def test_concurrent_requests_share_one_render(tmp_path: Path) -> None:
    store = DiskOriginalStore(tmp_path / "orig")
    key = await store.put(samples.jpeg(900, 600))
    cache = VariantCache(tmp_path / "cache", max_concurrent_renders=2)
    variant = VariantKey(key, 320, OutputFormat.WEBP, EncodeOptions(quality=50))
    results = await asyncio.gather(*(cache.get(variant, store.get) for _ in range(8)))
    assert cache.renders == 1
    assert len(set(results)) == 1
    assert Image.open(io.BytesIO(results[0])).size == (320, 213)
    assert cache.path(variant).read_bytes() == results[0]
    # A later request is served from disk, still without rendering again.
    assert await cache.get(variant, store.get) == results[0]
    assert cache.renders == 1
    assert variant.etag() == VariantKey(key, 320, OutputFormat.WEBP, EncodeOptions(50)).etag()
    assert variant.etag() != VariantKey(key, 480, OutputFormat.WEBP, EncodeOptions(50)).etag()


async def test_render_concurrency_is_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    active = 0
    peak = 0
    lock = threading.Lock()
    real = render_module.render_variant

    def counting_render(data: bytes, width: int, fmt: OutputFormat, opts: EncodeOptions) -> bytes:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        try:
            return real(data, width, fmt, opts)
        finally:
            with lock:
                active -= 1

    monkeypatch.setattr("service.images.variants.render_variant", counting_render)
    store = DiskOriginalStore(tmp_path / "orig")
    key = await store.put(samples.jpeg(1600, 1200))
    cache = VariantCache(tmp_path / "cache", max_concurrent_renders=2)
    keys = [
        VariantKey(key, w, OutputFormat.JPEG, EncodeOptions(70))
        for w in (100, 200, 300, 400, 500, 600)
    ]
    await asyncio.gather(*(cache.get(k, store.get) for k in keys))
    assert cache.renders == 6
    assert 1 <= peak <= 2


async def test_iiif_level0_pyramid(tmp_path: Path) -> None:
    store = DiskOriginalStore(tmp_path / "orig")
    key = await store.put(samples.jpeg(1500, 1000))
    tiles = TileStore(tmp_path / "cache", tile_size=512, quality=75)
    infos = await asyncio.gather(
        *(tiles.info(key, "https://img.test/iiif/abc", store.get) for _ in range(3))
    )
    assert tiles.builds == 1
    info = infos[0]
    assert info["id"] == "https://img.test/iiif/abc"
    assert info["profile"] == "level0"
    assert (info["width"], info["height"]) == (1500, 1000)
    assert info["tiles"][0]["width"] == 512
    assert info["tiles"][0]["scaleFactors"][:2] == [1, 2]
    tile = await tiles.tile(key, "0,0,512,512", "512,512", "0", "default.jpg", store.get)
    decoded = Image.open(io.BytesIO(tile))
    assert (decoded.format, decoded.size) == ("JPEG", (512, 512))
    edge = await tiles.tile(key, "1024,512,476,488", "476,488", "0", "default.jpg", store.get)
    assert Image.open(io.BytesIO(edge)).size == (476, 488)
    for region, size, rotation, qf in [
        ("0,0,500,500", "500,500", "0", "default.jpg"),  # not a published tile
        ("0,0,512,512", "512,512", "90", "default.jpg"),  # level 0: no rotation
        ("0,0,512,512", "512,512", "0", "gray.jpg"),
        ("..", "512,512", "0", "default.jpg"),
        ("0,0,512,512", "../../..", "0", "default.jpg"),
    ]:
        with pytest.raises(NotFound):
            await tiles.tile(key, region, size, rotation, qf, store.get)
