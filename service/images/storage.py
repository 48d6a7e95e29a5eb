"""Where originals live. An interface so an object store can replace the embedded disk store."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Protocol

from core.errors import NotFound

_KEY = re.compile(r"^[0-9a-f]{64}$")


def content_key(data: bytes) -> str:
    """The storage key of an original: the SHA-256 of its bytes (identical uploads share it)."""
    return hashlib.sha256(data).hexdigest()


class OriginalStore(Protocol):
    async def put(self, data: bytes) -> str:
        """Stores the bytes and returns their content key (idempotent)."""
        ...

    async def get(self, key: str) -> bytes:
        """The stored bytes; raises ``NotFound``."""
        ...

    async def exists(self, key: str) -> bool: ...


class DiskOriginalStore:
    """Originals as files ``root/ab/cd/<sha256>``, written atomically (temp file + rename)."""

    def __init__(self, root: Path) -> None:
        self._root = root

    def _path(self, key: str) -> Path:
        if not _KEY.match(key):
            raise NotFound("no such original", details={"key": key})
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
            raise NotFound("no such original", details={"key": key}) from exc

    async def put(self, data: bytes) -> str:
        key = content_key(data)
        await asyncio.to_thread(self._write, key, data)
        return key

    async def get(self, key: str) -> bytes:
        return await asyncio.to_thread(self._read, key)

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self._path(key).exists)
