"""Local copies of shared originals: fetched once per process, kept under the cache budget."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.errors import NotFound
from service.db import Database
from service.db.migrate import migrate
from service.images.cache_budget import ORIGINAL_COPY, scan, sweep
from service.images.local_copy import LocallyCopiedOriginals
from service.images.storage import DiskOriginalStore, OriginalStore
from service.images.storage_database import DatabaseOriginalStore
from service.metrics import REGISTRY


class CountingStore:
    """A real store that counts the reads reaching it."""

    def __init__(self, inner: OriginalStore) -> None:
        self.inner = inner
        self.kind = inner.kind
        self.gets = 0

    async def put(self, data: bytes) -> str:
        return await self.inner.put(data)

    async def get(self, key: str) -> bytes:
        self.gets += 1
        return await self.inner.get(key)

    async def exists(self, key: str) -> bool:
        return await self.inner.exists(key)

    async def delete(self, key: str) -> None:
        await self.inner.delete(key)

    async def start(self) -> None:
        await self.inner.start()

    async def stop(self) -> None:
        await self.inner.stop()


@pytest.fixture
async def shared(tmp_path: Path) -> AsyncIterator[CountingStore]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}")
    await migrate(db)
    yield CountingStore(DatabaseOriginalStore(db))
    await db.dispose()


async def test_a_process_fetches_an_original_once(shared: CountingStore, tmp_path: Path) -> None:
    data = os.urandom(200_000)
    key = await shared.put(data)  # ingested by another process
    local = LocallyCopiedOriginals(shared, tmp_path / "variants")
    results = await asyncio.gather(*(local.get(key) for _ in range(5)))
    assert results == [data] * 5
    assert shared.gets == 1  # concurrent readers shared one fetch
    assert local.copy_path(key) == tmp_path / "variants" / key[:2] / key / ORIGINAL_COPY
    assert local.copy_path(key).read_bytes() == data
    assert await local.get(key) == data
    assert shared.gets == 1


async def test_the_ingesting_process_keeps_a_copy(shared: CountingStore, tmp_path: Path) -> None:
    local = LocallyCopiedOriginals(shared, tmp_path / "variants")
    key = await local.put(b"ingested here" * 100)
    assert await local.get(key) == b"ingested here" * 100
    assert shared.gets == 0
    assert await shared.inner.get(key) == b"ingested here" * 100


async def test_a_copy_counts_in_the_budget_and_is_fetched_again_once_dropped(
    shared: CountingStore, tmp_path: Path
) -> None:
    key = await shared.put(os.urandom(50_000))
    local = LocallyCopiedOriginals(shared, tmp_path / "variants")
    data = await local.get(key)
    entries, _ = scan(tmp_path / "variants", tmp_path / "tiles", now=0)
    assert [(e.kind, e.bytes) for e in entries] == [("original", 50_000)]
    before = REGISTRY.get_sample_value("kervan_image_cache_evictions_total", {"kind": "original"})
    assert sweep(tmp_path / "variants", tmp_path / "tiles", budget=1).evicted == 1
    after = REGISTRY.get_sample_value("kervan_image_cache_evictions_total", {"kind": "original"})
    assert after == (before or 0) + 1
    assert not local.copy_path(key).exists()
    assert await local.get(key) == data
    assert shared.gets == 2


async def test_an_unwritable_cache_still_serves_from_the_store(
    shared: CountingStore, tmp_path: Path
) -> None:
    (tmp_path / "variants").write_bytes(b"")  # a file where the folder should be
    local = LocallyCopiedOriginals(shared, tmp_path / "variants")
    key = await local.put(b"still served")
    assert await local.get(key) == b"still served"
    assert await local.get(key) == b"still served"
    assert shared.gets == 2


async def test_delete_removes_the_original_and_the_copy(
    shared: CountingStore, tmp_path: Path
) -> None:
    local = LocallyCopiedOriginals(shared, tmp_path / "variants")
    key = await local.put(b"to delete")
    await local.delete(key)
    assert not local.copy_path(key).exists()
    assert not await shared.exists(key)


async def test_originals_of_the_earlier_file_storage_move_over_when_read(
    shared: CountingStore, tmp_path: Path
) -> None:
    legacy = DiskOriginalStore(tmp_path / "originals")
    key = await legacy.put(b"stored before the switch")
    local = LocallyCopiedOriginals(shared, tmp_path / "variants", legacy=legacy)
    assert await local.get(key) == b"stored before the switch"
    assert await shared.inner.get(key) == b"stored before the switch"  # now every process has it
    with pytest.raises(NotFound):
        await local.get("0" * 64)  # in neither
