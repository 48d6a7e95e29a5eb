"""A disk budget for the derived image caches: variants, IIIF tile pyramids and the local
copies of originals kept in shared storage (``local_copy.py``).

Variants and pyramids are pure functions of an original and the settings, and a copy is fetched
again, so any entry can be dropped and is made again on its next request. A sweep measures the
two trees (copies live in the variants' one) and, above the budget, drops the least recently
used entries until the total is at the low-water mark (90% of the budget), so a cache at its
bound is not swept on every pass. An entry is a variant file, a copy or a whole pyramid
(dropped as one: a pyramid is renamed away first, so readers never see half of one). "Used" is
the entry's mtime (a pyramid's: its info.json); hits touch it, at most once per
``TOUCH_INTERVAL_SECONDS`` so a hot entry costs no write per request. Temporary files that a
crashed render left behind are removed once they are ``STALE_TEMP_SECONDS`` old.

Several processes on one host may sweep the same trees: every step tolerates files vanishing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from service.images.metrics import IMAGE_CACHE_BYTES, IMAGE_CACHE_EVICTIONS
from service.logging import get_logger
from service.periodic import Periodic

log = get_logger("kervan.images.cache")

TOUCH_INTERVAL_SECONDS = 600.0
LOW_WATER = 0.9
STALE_TEMP_SECONDS = 3600.0
#: Prefixes of in-progress writes (variants.py, tiles.py) and of pyramids being dropped.
TEMP_PREFIXES = (".tmp-", ".tiles-", ".trash-")
PYRAMID_DIR = "iiif"
#: The file name of an original's local copy, beside its variants (never a variant's name).
ORIGINAL_COPY = "original"


def touch_if_stale(path: Path, mtime: float, now: float) -> None:
    """Mark a cache hit on ``path`` (last touched at ``mtime``) without a write per request."""
    if now - mtime > TOUCH_INTERVAL_SECONDS:
        with contextlib.suppress(OSError):
            os.utime(path)


@dataclass(frozen=True, slots=True)
class CacheEntry:
    path: Path
    kind: str  # "variant", "original" (a local copy) or "tiles"
    bytes: int
    used: float


@dataclass(frozen=True, slots=True)
class SweepReport:
    bytes_before: int
    bytes_after: int
    evicted: int
    stale_temps: int


def _tree_bytes(root: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def _is_temp(name: str) -> bool:
    return name.startswith(TEMP_PREFIXES)


def _key_dirs(root: Path) -> list[Path]:
    """``root/ab/<content key>`` directories (both caches shard by the key's first byte)."""
    found: list[Path] = []
    with contextlib.suppress(FileNotFoundError):
        for shard in os.scandir(root):
            if shard.is_dir(follow_symlinks=False):
                with contextlib.suppress(FileNotFoundError):
                    found += [
                        Path(d.path)
                        for d in os.scandir(shard.path)
                        if d.is_dir(follow_symlinks=False)
                    ]
    return found


def scan(variants: Path, tiles: Path, now: float) -> tuple[list[CacheEntry], list[Path]]:
    """Every cache entry, and the temporary leftovers old enough to remove."""
    entries: list[CacheEntry] = []
    stale: list[Path] = []
    for key_dir in _key_dirs(variants):
        with contextlib.suppress(FileNotFoundError):
            for item in os.scandir(key_dir):
                with contextlib.suppress(FileNotFoundError):
                    st = item.stat(follow_symlinks=False)
                    if _is_temp(item.name):
                        if now - st.st_mtime > STALE_TEMP_SECONDS:
                            stale.append(Path(item.path))
                    elif item.is_file(follow_symlinks=False):
                        kind = "original" if item.name == ORIGINAL_COPY else "variant"
                        entries.append(CacheEntry(Path(item.path), kind, st.st_size, st.st_mtime))
    for key_dir in _key_dirs(tiles):
        with contextlib.suppress(FileNotFoundError):
            for item in os.scandir(key_dir):
                with contextlib.suppress(FileNotFoundError):
                    path = Path(item.path)
                    if _is_temp(item.name):
                        if now - item.stat(follow_symlinks=False).st_mtime > STALE_TEMP_SECONDS:
                            stale.append(path)
                    elif item.name == PYRAMID_DIR:
                        used = (path / "info.json").stat().st_mtime
                        entries.append(CacheEntry(path, "tiles", _tree_bytes(path), used))
    return entries, stale


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        # Renamed first: a reader sees the whole pyramid or none of it, never a part.
        trash = path.with_name(f".trash-{secrets.token_hex(6)}")
        try:
            path.rename(trash)
        except FileNotFoundError:
            return
        shutil.rmtree(trash, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
    # Key directories stay (one per original, which is kept anyway): removing one could race
    # a render that has just created it to write its temporary file there.


def sweep(variants: Path, tiles: Path, budget: int, now: float | None = None) -> SweepReport:
    """Drop least recently used entries until the caches fit ``LOW_WATER * budget`` bytes."""
    now = time.time() if now is None else now
    entries, stale = scan(variants, tiles, now)
    for path in stale:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    total = sum(entry.bytes for entry in entries)
    before, evicted = total, 0
    if total > budget:
        target = int(budget * LOW_WATER)
        # Oldest use first; the path breaks ties so equal times evict in a stable order.
        for entry in sorted(entries, key=lambda e: (e.used, str(e.path))):
            if total <= target:
                break
            _remove(entry.path)
            IMAGE_CACHE_EVICTIONS.labels(entry.kind).inc()
            total -= entry.bytes
            evicted += 1
    return SweepReport(before, total, evicted, len(stale))


class CacheJanitor(Periodic):
    """Sweeps the caches at start and then every ``interval`` seconds (a runtime component)."""

    name = "image-cache-janitor"

    def __init__(self, variants: Path, tiles: Path, *, budget: int, interval: float) -> None:
        super().__init__(interval)
        self._variants = variants
        self._tiles = tiles
        self._budget = budget
        self.last: SweepReport | None = None

    async def sweep_once(self) -> SweepReport:
        report = await asyncio.to_thread(sweep, self._variants, self._tiles, self._budget)
        IMAGE_CACHE_BYTES.set(report.bytes_after)
        if report.evicted or report.stale_temps:
            log.info(
                "image caches swept: %d entries evicted, %d stale temporaries removed",
                report.evicted,
                report.stale_temps,
                extra={"bytes_before": report.bytes_before, "bytes_after": report.bytes_after},
            )
        self.last = report
        return report

    async def step(self) -> None:
        await self.sweep_once()
