"""Fixtures of the images tests: a local S3-protocol server and a bucket of each test's own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.images.s3server import create_bucket, s3_server


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with s3_server(tmp_path_factory.mktemp("s3")) as url:
        yield url


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> str:
    bucket = f"kervan-{uuid.uuid4().hex[:16]}"
    create_bucket(s3_endpoint, bucket)
    return bucket
