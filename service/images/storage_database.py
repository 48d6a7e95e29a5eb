"""Originals as blobs in the app's database (``KERVAN_IMAGES_STORAGE=database``), SQLite or
MariaDB: every process that shares the database sees every original, with no other server.

An original is written as a header row and its 1 MiB chunks in one transaction, so a reader
finds all of it or none of it. Database failures arrive as ``StorageError`` (a 503) from
``service.db``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import ColumnElement, LargeBinary, delete, exists, func, select

from core.errors import Conflict, NotFound, StorageError
from service.db import Database
from service.db.tables.images import ORIGINAL_CHUNK_BYTES, image_original_chunks, image_originals
from service.db.types import utcnow
from service.images.metrics import IMAGE_STORE_FAILURES
from service.images.storage import check_key, check_original_size, content_key, missing


class DatabaseOriginalStore:
    kind = "database"

    def __init__(
        self, db: Database, *, max_bytes: int | None = None, chunk_bytes: int = ORIGINAL_CHUNK_BYTES
    ) -> None:
        self._db = db
        self._max_bytes = max_bytes
        self._chunk = chunk_bytes

    async def put(self, data: bytes) -> str:
        check_original_size(data, self._max_bytes)
        key = content_key(data)
        # Identical bytes are stored once: skip sending megabytes the database already holds.
        if await self.exists(key):
            return key
        chunks = [data[i : i + self._chunk] for i in range(0, len(data), self._chunk)] or [b""]
        try:
            async with self._counted("put"), self._db.begin() as conn:
                await conn.execute(
                    image_originals.insert().values(
                        content_key=key, bytes=len(data), chunks=len(chunks), created_at=utcnow()
                    )
                )
                # One statement per chunk: a multi-row INSERT could exceed max_allowed_packet.
                for seq, chunk in enumerate(chunks):
                    await conn.execute(
                        image_original_chunks.insert().values(
                            content_key=key, seq=seq, data=self._blob(chunk)
                        )
                    )
        except Conflict:
            # Another process stored the same bytes meanwhile: that is the same original.
            if not await self.exists(key):
                raise
        return key

    def _blob(self, chunk: bytes) -> bytes | ColumnElement[bytes]:
        if self._db.dialect == "mysql":
            # aiomysql 0.3.2 cannot bind bytes with PyMySQL >= 1.2.3 (aio-libs/aiomysql#1080:
            # "'str' object is not callable"); hex text unhexed by the server is the same
            # literal PyMySQL itself would send (_binary X'...'), so it costs nothing extra.
            return func.unhex(chunk.hex(), type_=LargeBinary)
        return chunk

    async def get(self, key: str) -> bytes:
        check_key(key)
        async with self._counted("get"), self._db.connect() as conn:
            header = (
                await conn.execute(
                    select(image_originals.c.bytes, image_originals.c.chunks).where(
                        image_originals.c.content_key == key
                    )
                )
            ).first()
            if header is None:
                raise missing(key)
            rows = (
                await conn.execute(
                    select(image_original_chunks.c.data)
                    .where(image_original_chunks.c.content_key == key)
                    .order_by(image_original_chunks.c.seq)
                )
            ).all()
        data = b"".join(bytes(row[0]) for row in rows)
        if len(rows) != header.chunks or len(data) != header.bytes:
            IMAGE_STORE_FAILURES.labels(self.kind, "get").inc()
            raise StorageError(
                f"image original {key} is incomplete: {len(data)} of {header.bytes} bytes"
            )
        return data

    async def exists(self, key: str) -> bool:
        try:
            check_key(key)
        except NotFound:
            return False
        async with self._counted("exists"), self._db.connect() as conn:
            found = await conn.scalar(select(exists().where(image_originals.c.content_key == key)))
        return bool(found)

    async def delete(self, key: str) -> None:
        try:
            check_key(key)
        except NotFound:
            return
        async with self._counted("delete"), self._db.begin() as conn:
            # Chunks first: no reliance on the foreign key's cascade being enforced.
            await conn.execute(
                delete(image_original_chunks).where(image_original_chunks.c.content_key == key)
            )
            await conn.execute(delete(image_originals).where(image_originals.c.content_key == key))

    @asynccontextmanager
    async def _counted(self, operation: str) -> AsyncIterator[None]:
        """Counts a database failure of ``operation``; the error passes on unchanged."""
        try:
            yield
        except StorageError:
            IMAGE_STORE_FAILURES.labels(self.kind, operation).inc()
            raise

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None  # the runtime disposes of the database
