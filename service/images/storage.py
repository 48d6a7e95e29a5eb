"""Where originals live: one interface, the ``file`` implementation (the embedded default) and
the checks every implementation shares.

The other implementations: ``storage_database.py`` (blobs in the app's database) and
``storage_s3.py`` (an S3-compatible object store); ``stores.py`` picks one from the settings.
Every implementation is content-addressed (the key is the SHA-256 of the bytes, so identical
uploads share one original), refuses originals above the configured size, answers a missing or
malformed key with ``NotFound`` and wraps its backend's failures into ``BackendUnavailable``
(a 503), so a storage outage never surfaces as a 500.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Protocol

from core.errors import BackendUnavailable, NotFound
from core.images.errors import ImageTooLarge
from service.images.metrics import IMAGE_STORE_FAILURES

_KEY = re.compile(r"^[0-9a-f]{64}$")


def content_key(data: bytes) -> str:
    """The storage key of an original: the SHA-256 of its bytes (identical uploads share it)."""
    return hashlib.sha256(data).hexdigest()


def check_key(key: str) -> str:
    """``key`` if it is a content key; anything else names no original (never a path)."""
    if not _KEY.match(key):
        raise NotFound("no such original", details={"key": key[:80]})
    return key


def check_original_size(data: bytes, max_bytes: int | None) -> None:
    if max_bytes is not None and len(data) > max_bytes:
        raise ImageTooLarge(
            f"the image has more than {max_bytes} bytes", details={"max_bytes": max_bytes}
        )


def missing(key: str) -> NotFound:
    return NotFound("no such original", details={"key": key})


def unavailable(storage: str, component: str, operation: str, exc: BaseException) -> Exception:
    """The wrapped form of a backend failure, counted by storage and operation."""
    IMAGE_STORE_FAILURES.labels(storage, operation).inc()
    return BackendUnavailable(
        component,
        f"image original store ({storage}): {operation} failed: {type(exc).__name__}: {exc}",
    )


class OriginalStore(Protocol):
    """The originals of every image, shared by every process that reads the same storage.

    ``start`` and ``stop`` make it a runtime component (connections opened and closed).
    """

    kind: str

    async def put(self, data: bytes) -> str:
        """Stores the bytes and returns their content key (idempotent); ``ImageTooLarge``
        above the size limit."""
        ...

    async def get(self, key: str) -> bytes:
        """The stored bytes; raises ``NotFound``."""
        ...

    async def exists(self, key: str) -> bool: ...

    async def delete(self, key: str) -> None:
        """Removes the original; a missing one is no error."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class DiskOriginalStore:
    """Originals as files ``root/ab/cd/<sha256>``, written atomically (temp file + rename).

    Only processes that share the folder see them: the embedded default.
    """

    kind = "file"

    def __init__(self, root: Path, *, max_bytes: int | None = None) -> None:
        self._root = root
        self._max_bytes = max_bytes

    def _path(self, key: str) -> Path:
        check_key(key)
        return self._root / key[:2] / key[2:4] / key

    def _write(self, key: str, data: bytes) -> None:
        path = self._path(key)
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _read(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise missing(key) from exc

    def _exists(self, key: str) -> bool:
        try:
            os.stat(self._path(key))
        except FileNotFoundError:
            return False
        return True

    async def put(self, data: bytes) -> str:
        check_original_size(data, self._max_bytes)
        key = content_key(data)
        try:
            await asyncio.to_thread(self._write, key, data)
        except OSError as exc:
            raise unavailable(self.kind, "disk", "put", exc) from exc
        return key

    async def get(self, key: str) -> bytes:
        try:
            return await asyncio.to_thread(self._read, key)
        except OSError as exc:
            raise unavailable(self.kind, "disk", "get", exc) from exc

    async def exists(self, key: str) -> bool:
        try:
            return await asyncio.to_thread(self._exists, key)
        except NotFound:
            return False
        except OSError as exc:
            raise unavailable(self.kind, "disk", "exists", exc) from exc

    async def delete(self, key: str) -> None:
        try:
            path = self._path(key)
        except NotFound:
            return
        try:
            await asyncio.to_thread(path.unlink, missing_ok=True)
        except OSError as exc:
            raise unavailable(self.kind, "disk", "delete", exc) from exc

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None
