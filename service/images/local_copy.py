"""A process's local copies of originals kept in shared storage (``database`` or ``s3``).

Rendering a variant or a tile pyramid needs the whole original; without a copy, each of an
image's variants rendered on this process would fetch the original again. The copy lives in
the variant cache's folder of its content key (``<variants>/ab/<key>/original``), so the cache
janitor counts it in the disk budget and drops it like any entry (it is fetched again when
needed). Concurrent fetches of one original are shared (single flight).

A deployment that switches from ``file`` storage still has its earlier originals on disk: one
missing from the shared storage is looked up there (``legacy``) and uploaded, so switching
loses nothing that this host holds.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path

from core.errors import NotFound
from service.images.cache_budget import ORIGINAL_COPY, touch_if_stale
from service.images.metrics import IMAGE_ORIGINAL_READS
from service.images.storage import OriginalStore, check_key


class LocallyCopiedOriginals:
    """An ``OriginalStore`` that reads through a local disk copy; writes go to ``shared``."""

    def __init__(
        self, shared: OriginalStore, variants_root: Path, *, legacy: OriginalStore | None = None
    ) -> None:
        self.shared = shared
        self.kind = shared.kind
        self._root = variants_root
        self._legacy = legacy
        self._in_flight: dict[str, asyncio.Task[bytes]] = {}

    def copy_path(self, key: str) -> Path:
        check_key(key)
        return self._root / key[:2] / key / ORIGINAL_COPY

    async def put(self, data: bytes) -> str:
        key = await self.shared.put(data)
        # The process that ingests an image usually renders its first variants too.
        await asyncio.to_thread(self._write, key, data)
        return key

    async def get(self, key: str) -> bytes:
        path = self.copy_path(key)
        local = await asyncio.to_thread(_read, path)
        if local is not None:
            IMAGE_ORIGINAL_READS.labels("local").inc()
            return local
        task = self._in_flight.get(key)
        if task is None:
            # Its own task, so a requester that goes away does not cancel the others' fetch.
            task = asyncio.create_task(self._fetch(key))
            self._in_flight[key] = task
            task.add_done_callback(lambda _t: self._in_flight.pop(key, None))
        return await asyncio.shield(task)

    async def _fetch(self, key: str) -> bytes:
        try:
            data = await self.shared.get(key)
            IMAGE_ORIGINAL_READS.labels(self.kind).inc()
        except NotFound:
            if self._legacy is None:
                raise
            data = await self._legacy.get(key)
            IMAGE_ORIGINAL_READS.labels("legacy_file").inc()
            await self.shared.put(data)
        await asyncio.to_thread(self._write, key, data)
        return data

    async def exists(self, key: str) -> bool:
        return await self.shared.exists(key)

    async def delete(self, key: str) -> None:
        await self.shared.delete(key)
        path = self.copy_path(key)
        await asyncio.to_thread(path.unlink, missing_ok=True)

    async def start(self) -> None:
        await self.shared.start()

    async def stop(self) -> None:
        await self.shared.stop()

    def _write(self, key: str, data: bytes) -> None:
        path = self.copy_path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        except OSError:
            return  # only a cache: the next render fetches the original again
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except OSError:
            Path(tmp).unlink(missing_ok=True)


def _read(path: Path) -> bytes | None:
    try:
        with path.open("rb") as fh:
            data = fh.read()
            mtime = os.fstat(fh.fileno()).st_mtime
    except OSError:
        return None
    touch_if_stale(path, mtime, time.time())  # a hit: recently used for the disk budget
    return data
