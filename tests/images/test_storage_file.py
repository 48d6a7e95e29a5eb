"""The ``file`` original store (the embedded default) keeps the originals' contract."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from core.errors import BackendUnavailable
from service.images.storage import DiskOriginalStore, OriginalStore
from tests.images.storage_contract import OriginalStoreContract


@pytest.fixture
def make_store(tmp_path: Path) -> Callable[..., OriginalStore]:
    def make(max_bytes: int | None = None) -> OriginalStore:
        return DiskOriginalStore(tmp_path / "originals", max_bytes=max_bytes)

    return make


@pytest.fixture
def broken_store(tmp_path: Path) -> OriginalStore:
    # The folder is a plain file: every path below it fails as an unusable disk would.
    (tmp_path / "not-a-folder").write_bytes(b"")
    return DiskOriginalStore(tmp_path / "not-a-folder")


class TestFileStore(OriginalStoreContract):
    pass


async def test_the_outage_names_the_disk(broken_store: OriginalStore) -> None:
    with pytest.raises(BackendUnavailable) as info:
        await broken_store.put(b"x")
    assert info.value.component == "disk"


async def test_originals_are_files_sharded_by_key(tmp_path: Path) -> None:
    store = DiskOriginalStore(tmp_path)
    key = await store.put(b"bytes")
    assert (tmp_path / key[:2] / key[2:4] / key).read_bytes() == b"bytes"
