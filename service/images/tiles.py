"""IIIF Image API 3.0 level 0 tiles: a static pyramid (libvips ``dzsave``, IIIF 3 layout) made
on first request, cached on disk, and served as plain files."""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pyvips

from core.errors import NotFound
from core.images.errors import ImageRejected
from service.images.cache_budget import PYRAMID_DIR, touch_if_stale

OriginalLoader = Callable[[str], Awaitable[bytes]]

# What level 0 can publish; the OpenAPI document states these same patterns. Anything else is
# 404 (not 422): IIIF clients probe for tiles and expect "not there".
REGION_PATTERN = "^(full|[0-9]{1,6},[0-9]{1,6},[0-9]{1,6},[0-9]{1,6})$"
SIZE_PATTERN = "^(max|[0-9]{1,6},[0-9]{0,6}|,[0-9]{1,6})$"
ROTATION_PATTERN = "^0$"
_QUALITY = "default"
_FORMAT = "jpg"
QUALITY_FORMAT_PATTERN = f"^{_QUALITY}\\.{_FORMAT}$"
_REGION = re.compile(REGION_PATTERN)
_SIZE = re.compile(SIZE_PATTERN)
_ROTATION = re.compile(ROTATION_PATTERN)
_DIR_NAME = PYRAMID_DIR


def _built(pyramid: Path) -> bool:
    """Whether the pyramid exists; a hit marks it recently used for the disk budget."""
    info = pyramid / "info.json"
    try:
        mtime = info.stat().st_mtime
    except (FileNotFoundError, NotADirectoryError):
        return False
    touch_if_stale(info, mtime, time.time())
    return True


class TileStore:
    def __init__(
        self, root: Path, *, tile_size: int, quality: int, max_concurrent: int = 1
    ) -> None:
        self._root = root
        self._tile_size = tile_size
        self._quality = quality
        self._slots = asyncio.Semaphore(max_concurrent)
        self._in_flight: dict[str, asyncio.Task[Path]] = {}
        self.builds = 0

    def _dir(self, content_key: str) -> Path:
        return self._root / content_key[:2] / content_key / _DIR_NAME

    async def ensure(self, content_key: str, load_original: OriginalLoader) -> Path:
        target = self._dir(content_key)
        if await asyncio.to_thread(_built, target):
            return target
        task = self._in_flight.get(content_key)
        if task is None:
            task = asyncio.create_task(self._build(content_key, load_original))
            self._in_flight[content_key] = task
            task.add_done_callback(lambda _t: self._in_flight.pop(content_key, None))
        return await asyncio.shield(task)

    async def _build(self, content_key: str, load_original: OriginalLoader) -> Path:
        original = await load_original(content_key)
        async with self._slots:
            await asyncio.to_thread(self._build_sync, content_key, original)
            self.builds += 1
        return self._dir(content_key)

    def _build_sync(self, content_key: str, original: bytes) -> None:
        target = self._dir(content_key)
        target.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tiles-"))
        try:
            image = pyvips.Image.new_from_buffer(original, "", access="sequential")
            image = image.autorot()
            if image.hasalpha():
                image = image.flatten(background=[255] * (image.bands - 1))
            image.dzsave(
                str(scratch / _DIR_NAME),
                layout="iiif3",
                tile_size=self._tile_size,
                overlap=0,
                suffix=f".jpg[Q={self._quality},keep=none]",
                id="kervan:",
            )
            # Rename is atomic: readers see either no pyramid or a complete one.
            (scratch / _DIR_NAME).rename(target)
        except pyvips.Error as exc:
            raise ImageRejected("the image cannot be tiled") from exc
        except OSError:
            if not (target / "info.json").exists():
                raise
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    async def info(
        self, content_key: str, service_id: str, load_original: OriginalLoader
    ) -> dict[str, Any]:
        directory = await self.ensure(content_key, load_original)
        raw = await asyncio.to_thread((directory / "info.json").read_bytes)
        info: dict[str, Any] = orjson.loads(raw)
        info["id"] = service_id
        return info

    async def tile(
        self,
        content_key: str,
        region: str,
        size: str,
        rotation: str,
        quality_format: str,
        load_original: OriginalLoader,
    ) -> bytes:
        """One pre-rendered tile; anything not in the static pyramid is 404 (level 0)."""
        if (
            not _REGION.fullmatch(region)
            or not _SIZE.fullmatch(size)
            or not _ROTATION.fullmatch(rotation)
            or quality_format != f"{_QUALITY}.{_FORMAT}"
        ):
            raise NotFound("level 0 serves only the published tiles")
        relative = Path(region) / size / rotation / quality_format
        directory = await self.ensure(content_key, load_original)
        try:
            return await asyncio.to_thread((directory / relative).read_bytes)
        except (FileNotFoundError, NotADirectoryError) as exc:
            if await asyncio.to_thread((directory / "info.json").exists):
                raise NotFound("no such tile", details={"region": region, "size": size}) from exc
        # The pyramid was dropped by the cache budget in between: build it again, once.
        directory = await self.ensure(content_key, load_original)
        try:
            return await asyncio.to_thread((directory / relative).read_bytes)
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise NotFound("no such tile", details={"region": region, "size": size}) from exc
