"""Variants on demand: rendered once off the event loop, cached on disk, shared by concurrent
requests (single flight per variant), with a bound on simultaneous libvips renders."""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from core.images.formats import OutputFormat
from service.images.cache_budget import touch_if_stale
from service.images.metrics import IMAGE_RENDER_SECONDS, IMAGE_RENDERS
from service.images.render import EncodeOptions, libvips_version, render_variant

OriginalLoader = Callable[[str], Awaitable[bytes]]


@dataclass(frozen=True, slots=True)
class VariantKey:
    content_key: str
    width: int
    fmt: OutputFormat
    options: EncodeOptions

    @property
    def file_name(self) -> str:
        o = self.options
        return f"{self.width}-q{o.quality}-e{o.avif_effort}.{o.webp_effort}.{self.fmt.value}"

    def etag(self) -> str:
        """Strong validator: the bytes are a pure function of the original, the parameters and
        the libvips version, so equal inputs always mean equal bytes."""
        raw = f"{self.content_key}/{self.file_name}/{libvips_version()}".encode()
        return '"' + hashlib.sha256(raw).hexdigest()[:32] + '"'


class VariantCache:
    def __init__(self, root: Path, *, max_concurrent_renders: int) -> None:
        self._root = root
        self._slots = asyncio.Semaphore(max_concurrent_renders)
        self._in_flight: dict[VariantKey, asyncio.Task[bytes]] = {}
        self.renders = 0  # libvips renders performed (cache misses), for tests and metrics

    def path(self, key: VariantKey) -> Path:
        c = key.content_key
        return self._root / c[:2] / c / key.file_name

    async def get(
        self,
        key: VariantKey,
        load_original: OriginalLoader,
        *,
        before_render: Callable[[], None] | None = None,
    ) -> bytes:
        """The variant, rendered on a miss. ``before_render`` may refuse a new render (it
        raises: degrade mode sheds variants not rendered yet); a cached one is always served."""
        cached = await asyncio.to_thread(self._read, key)
        if cached is not None:
            return cached
        task = self._in_flight.get(key)
        if task is None:
            if before_render is not None:
                before_render()
            # The render is its own task so a requester that disconnects does not cancel it
            # for the others waiting on the same variant.
            task = asyncio.create_task(self._render(key, load_original))
            self._in_flight[key] = task
            task.add_done_callback(lambda _t: self._in_flight.pop(key, None))
        return await asyncio.shield(task)

    async def _render(self, key: VariantKey, load_original: OriginalLoader) -> bytes:
        original = await load_original(key.content_key)
        async with self._slots:
            started = time.perf_counter()
            data = await asyncio.to_thread(
                render_variant, original, key.width, key.fmt, key.options
            )
            IMAGE_RENDER_SECONDS.labels(key.fmt.value).observe(time.perf_counter() - started)
            IMAGE_RENDERS.labels(key.fmt.value).inc()
            self.renders += 1
        await asyncio.to_thread(self._write, key, data)
        return data

    def _read(self, key: VariantKey) -> bytes | None:
        path = self.path(key)
        try:
            with path.open("rb") as fh:
                data = fh.read()
                mtime = os.fstat(fh.fileno()).st_mtime
        except FileNotFoundError:
            return None
        touch_if_stale(path, mtime, time.time())  # a hit: recently used for the disk budget
        return data

    def _write(self, key: VariantKey, data: bytes) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
