"""The ``database`` original store keeps the originals' contract on SQLite and on MariaDB."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select

from core.errors import BackendUnavailable, StorageError
from service.db import Database
from service.db.tables.images import ORIGINAL_CHUNK_BYTES, image_original_chunks, image_originals
from service.images.storage import OriginalStore
from service.images.storage_database import DatabaseOriginalStore
from tests.images.storage_contract import OriginalStoreContract
from tests.services import free_port


@pytest.fixture
async def make_store(database_url: str) -> AsyncIterator[Callable[..., OriginalStore]]:
    opened: list[Database] = []

    def make(max_bytes: int | None = None) -> OriginalStore:
        # A database engine of its own, as another process would have.
        db = Database(database_url)
        opened.append(db)
        return DatabaseOriginalStore(db, max_bytes=max_bytes)

    yield make
    for db in opened:
        await db.dispose()


@pytest.fixture
async def broken_store(database_url: str, tmp_path: Path) -> AsyncIterator[OriginalStore]:
    if database_url.startswith("sqlite"):
        broken = tmp_path / "broken.db"
        broken.write_bytes(b"not a database " * 1000)  # a damaged file
        url = f"sqlite+aiosqlite:///{broken}"
    else:
        url = f"mariadb+aiomysql://root@127.0.0.1:{free_port()}/test"  # nothing listens
    db = Database(url)
    yield DatabaseOriginalStore(db)
    await db.dispose()


class TestDatabaseStore(OriginalStoreContract):
    pass


async def test_an_original_larger_than_one_statement_may_be(database: Database) -> None:
    # 17 MiB: above MariaDB's default max_allowed_packet (16 MiB), which a single-row blob
    # could not pass; the default images_max_bytes (25 MiB) is above it too.
    store = DatabaseOriginalStore(database, max_bytes=25 * 1024 * 1024)
    data = os.urandom(17 * 1024 * 1024)
    key = await store.put(data)
    assert await store.get(key) == data
    async with database.connect() as conn:
        chunks = await conn.scalar(
            select(func.count())
            .select_from(image_original_chunks)
            .where(image_original_chunks.c.content_key == key)
        )
        size = await conn.scalar(
            select(image_originals.c.bytes).where(image_originals.c.content_key == key)
        )
    assert chunks == 17 * 1024 * 1024 // ORIGINAL_CHUNK_BYTES
    assert size == len(data)


async def test_an_incomplete_original_is_an_error_not_short_bytes(database: Database) -> None:
    store = DatabaseOriginalStore(database)
    key = await store.put(os.urandom(ORIGINAL_CHUNK_BYTES * 2 + 1))
    async with database.begin() as conn:
        await conn.execute(
            delete(image_original_chunks).where(
                image_original_chunks.c.content_key == key, image_original_chunks.c.seq == 1
            )
        )
    with pytest.raises(StorageError):
        await store.get(key)


async def test_the_outage_names_the_database(broken_store: OriginalStore) -> None:
    with pytest.raises(BackendUnavailable) as info:
        await broken_store.get("0" * 64)
    assert info.value.component == "database"
