"""The contract every original store keeps (``file``, ``database``, ``s3``).

A test module per implementation subclasses ``OriginalStoreContract`` and provides two
fixtures: ``make_store`` (``make_store(max_bytes=None)``: a new store instance on the same
backend each call, as another process would open it; all stopped at teardown) and
``broken_store`` (an instance whose backend is down or unreachable).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Awaitable, Callable

import pytest

from core.errors import BackendUnavailable, NotFound
from core.images.errors import ImageTooLarge
from service.images.storage import OriginalStore, content_key

MakeStore = Callable[..., OriginalStore]
#: Above two 1 MiB database chunks and not a multiple of one.
LIMIT = 2 * 1024 * 1024 + 5
MALFORMED_KEYS = ("A" * 64, "0" * 63, "0" * 65, "../../etc/passwd", "", "0" * 62 + "/x")


class OriginalStoreContract:
    async def test_put_then_get_by_content_key(self, make_store: MakeStore) -> None:
        store = make_store()
        data = os.urandom(300_000)
        key = await store.put(data)
        assert key == hashlib.sha256(data).hexdigest()
        assert await store.get(key) == data
        assert await store.exists(key)
        assert await store.put(data) == key  # storing the same bytes again is a no-op

    async def test_another_instance_on_the_same_backend_reads_it(
        self, make_store: MakeStore
    ) -> None:
        data = os.urandom(10_000)
        key = await make_store().put(data)
        reader = make_store()
        assert await reader.exists(key)
        assert await reader.get(key) == data

    async def test_a_multi_megabyte_original_round_trips(self, make_store: MakeStore) -> None:
        data = os.urandom(3 * 1024 * 1024 + 17)
        key = await make_store().put(data)
        assert await make_store().get(key) == data

    async def test_missing_and_malformed_keys_are_not_found(self, make_store: MakeStore) -> None:
        store = make_store()
        await store.put(b"something else" * 10)
        for key in ("0" * 64, *MALFORMED_KEYS):
            with pytest.raises(NotFound):
                await store.get(key)
            assert not await store.exists(key)
            await store.delete(key)  # nothing to delete is no error

    async def test_delete_removes_only_that_original(self, make_store: MakeStore) -> None:
        store, other = make_store(), make_store()
        kept = await store.put(b"kept" * 100)
        gone = await store.put(b"gone" * 100)
        await store.delete(gone)
        assert not await other.exists(gone)
        with pytest.raises(NotFound):
            await other.get(gone)
        await store.delete(gone)  # again: no error
        assert await other.get(kept) == b"kept" * 100
        assert await store.put(b"gone" * 100) == gone  # and it can be stored again
        assert await other.get(gone) == b"gone" * 100

    async def test_originals_above_the_size_limit_are_refused(self, make_store: MakeStore) -> None:
        store = make_store(max_bytes=LIMIT)
        at_limit = os.urandom(LIMIT)
        assert await store.get(await store.put(at_limit)) == at_limit
        over = os.urandom(LIMIT + 1)
        with pytest.raises(ImageTooLarge) as info:
            await store.put(over)
        assert info.value.details == {"max_bytes": LIMIT}
        assert not await make_store().exists(content_key(over))

    async def test_concurrent_puts_of_the_same_bytes_store_one_original(
        self, make_store: MakeStore
    ) -> None:
        data = os.urandom(2 * 1024 * 1024)
        keys = await asyncio.gather(*(make_store().put(data) for _ in range(4)))
        assert set(keys) == {content_key(data)}
        assert await make_store().get(keys[0]) == data

    async def test_an_outage_is_backend_unavailable(self, broken_store: OriginalStore) -> None:
        key = content_key(b"anything")
        calls: list[Callable[[], Awaitable[object]]] = [
            lambda: broken_store.put(b"anything"),
            lambda: broken_store.get(key),
            lambda: broken_store.exists(key),
            lambda: broken_store.delete(key),
        ]
        for call in calls:
            with pytest.raises(BackendUnavailable):
                await call()
