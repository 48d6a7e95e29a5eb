"""The ``s3`` original store keeps the originals' contract over the S3 wire protocol, against a
local S3-compatible server (moto's server mode) started by the tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from core.errors import BackendUnavailable, NotFound
from service.images.storage import OriginalStore, content_key
from service.images.storage_s3 import COMPONENT, S3Location, S3OriginalStore
from tests.images.s3server import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, s3_client
from tests.images.storage_contract import OriginalStoreContract
from tests.services import free_port


def location(endpoint: str, **overrides: object) -> S3Location:
    values: dict[str, object] = {
        "endpoint_url": endpoint,
        "region": REGION,
        "access_key_id": ACCESS_KEY_ID,
        "secret_access_key": SECRET_ACCESS_KEY,
        "path_style": True,
    }
    values.update(overrides)
    return S3Location(**values)  # type: ignore[arg-type]


@pytest.fixture
async def opened() -> AsyncIterator[list[S3OriginalStore]]:
    stores: list[S3OriginalStore] = []
    yield stores
    for store in stores:
        await store.stop()


@pytest.fixture
def make_store(
    s3_endpoint: str, s3_bucket: str, opened: list[S3OriginalStore]
) -> Callable[..., OriginalStore]:
    def make(max_bytes: int | None = None, **overrides: object) -> S3OriginalStore:
        # A client of its own, as another process would have.
        values = {"bucket": s3_bucket, **overrides}
        store = S3OriginalStore(location(s3_endpoint, **values), max_bytes=max_bytes)
        opened.append(store)
        return store

    return make


@pytest.fixture
def broken_store(s3_bucket: str, opened: list[S3OriginalStore]) -> OriginalStore:
    # Nothing listens there; one attempt per call keeps the test short.
    endpoint = f"http://127.0.0.1:{free_port()}"
    store = S3OriginalStore(
        location(endpoint, bucket=s3_bucket, max_attempts=1, timeout_seconds=2.0)
    )
    opened.append(store)
    return store


class TestS3Store(OriginalStoreContract):
    pass


async def test_objects_are_named_by_prefix_and_key(
    make_store: Callable[..., S3OriginalStore], s3_endpoint: str, s3_bucket: str
) -> None:
    store = make_store(prefix="kervan/originals/")
    key = await store.put(b"prefixed" * 10)
    listed = s3_client(s3_endpoint).list_objects_v2(Bucket=s3_bucket)
    assert [o["Key"] for o in listed["Contents"]] == [f"kervan/originals/{key}"]
    assert await store.get(key) == b"prefixed" * 10
    assert not await make_store().exists(key)  # another prefix is another store


async def test_a_missing_bucket_is_an_outage_not_a_missing_image(
    make_store: Callable[..., S3OriginalStore],
) -> None:
    store = make_store(bucket="kervan-no-such-bucket")
    key = content_key(b"x")
    for call in (store.get(key), store.exists(key), store.put(b"x")):
        with pytest.raises(BackendUnavailable) as info:
            await call
        assert info.value.component == COMPONENT
        assert not isinstance(info.value, NotFound)


async def test_an_object_that_does_not_match_its_key_is_refused(
    make_store: Callable[..., S3OriginalStore], s3_endpoint: str, s3_bucket: str
) -> None:
    store = make_store()
    key = await store.put(b"the original")
    s3_client(s3_endpoint).put_object(Bucket=s3_bucket, Key=key, Body=b"something else")
    with pytest.raises(BackendUnavailable):
        await store.get(key)


async def test_the_client_reopens_after_stop(make_store: Callable[..., S3OriginalStore]) -> None:
    store = make_store()
    await store.start()
    key = await store.put(b"before")
    await store.stop()
    assert await store.get(key) == b"before"
