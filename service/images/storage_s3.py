"""Originals in an S3-compatible object store (``KERVAN_IMAGES_STORAGE=s3``): AWS S3, MinIO,
Ceph RGW, Cloudflare R2, ... over aiobotocore.

Objects are written whole (originals stay far below the sizes that call for multipart uploads)
under ``<prefix><sha256>``. Every failure of the store or of the way to it (refused connection,
timeout, denied access, missing bucket) becomes ``BackendUnavailable`` (a 503): only a missing
object is ``NotFound``. Content keys are hashes, so what comes back is checked against its key.

The credentials need ``s3:GetObject``, ``s3:PutObject``, ``s3:DeleteObject`` and
``s3:ListBucket`` on the bucket: without the last, AWS answers a missing object with 403, which
cannot be told from a denied one and is therefore reported as an outage.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiobotocore.config import AioConfig  # type: ignore[import-untyped]
from aiobotocore.session import get_session  # type: ignore[import-untyped]
from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

from core.errors import BackendUnavailable, NotFound
from service.images.metrics import IMAGE_STORE_FAILURES
from service.images.settings import ImagesSettings
from service.images.storage import (
    check_key,
    check_original_size,
    content_key,
    missing,
    unavailable,
)

COMPONENT = "object_store"
#: Region used to sign requests to a store reached by its endpoint alone (MinIO and most
#: S3-compatible stores accept any; this is the one they document).
DEFAULT_SIGNING_REGION = "us-east-1"
#: What a failure of the store or of the network looks like from here.
_FAILURES = (BotoCoreError, ClientError, aiohttp.ClientError, OSError, TimeoutError)
_MISSING_CODES = frozenset({"NoSuchKey", "NotFound", "404"})


@dataclass(frozen=True, slots=True)
class S3Location:
    bucket: str
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    prefix: str = ""
    path_style: bool = False
    timeout_seconds: float = 10.0
    #: Tries of one call (botocore's standard retry mode: throttling, 5xx and network errors).
    max_attempts: int = 3

    @classmethod
    def from_settings(cls, settings: ImagesSettings) -> S3Location:
        if settings.images_s3_bucket is None:  # the settings refuse this at start-up
            raise ValueError("KERVAN_IMAGES_S3_BUCKET is not set")
        secret = settings.images_s3_secret_access_key
        return cls(
            bucket=settings.images_s3_bucket,
            endpoint_url=settings.images_s3_endpoint_url,
            region=settings.images_s3_region,
            access_key_id=settings.images_s3_access_key_id,
            secret_access_key=None if secret is None else secret.get_secret_value(),
            prefix=settings.images_s3_prefix,
            path_style=settings.images_s3_path_style,
            timeout_seconds=settings.images_s3_timeout_seconds,
        )

    def client_args(self) -> dict[str, Any]:
        config = AioConfig(
            connect_timeout=self.timeout_seconds,
            read_timeout=self.timeout_seconds,
            retries={"mode": "standard", "max_attempts": self.max_attempts},
            s3={"addressing_style": "path" if self.path_style else "auto"},
            # botocore's default adds CRC trailers that several S3-compatible stores refuse;
            # integrity is checked here against the content key instead.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            # The settings decide the endpoint, never AWS_ENDPOINT_URL* from the environment.
            ignore_configured_endpoint_urls=True,
        )
        args: dict[str, Any] = {
            "region_name": self.region or DEFAULT_SIGNING_REGION,
            "endpoint_url": self.endpoint_url,
            "config": config,
        }
        if self.access_key_id is not None:
            args["aws_access_key_id"] = self.access_key_id
            args["aws_secret_access_key"] = self.secret_access_key
        return args


def _error_code(exc: ClientError) -> str:
    error: dict[str, Any] = exc.response.get("Error", {})
    return str(error.get("Code", ""))


class S3OriginalStore:
    kind = "s3"

    def __init__(self, location: S3Location, *, max_bytes: int | None = None) -> None:
        self._location = location
        self._max_bytes = max_bytes
        self._client: Any = None
        self._stack: AsyncExitStack | None = None
        self._opening = asyncio.Lock()

    def object_key(self, key: str) -> str:
        return f"{self._location.prefix}{key}"

    async def _s3(self, operation: str) -> Any:
        """The client, opened on first use (or by ``start``)."""
        if self._client is not None:
            return self._client
        async with self._opening:
            if self._client is None:
                stack = AsyncExitStack()
                try:
                    creator = get_session().create_client("s3", **self._location.client_args())
                    self._client = await stack.enter_async_context(creator)
                except (*_FAILURES, ValueError) as exc:
                    await stack.aclose()
                    raise unavailable(self.kind, COMPONENT, operation, exc) from exc
                self._stack = stack
        return self._client

    async def put(self, data: bytes) -> str:
        check_original_size(data, self._max_bytes)
        key = content_key(data)
        s3 = await self._s3("put")
        try:
            await s3.put_object(
                Bucket=self._location.bucket,
                Key=self.object_key(key),
                Body=data,
                ContentType="application/octet-stream",
            )
        except _FAILURES as exc:
            raise unavailable(self.kind, COMPONENT, "put", exc) from exc
        return key

    async def get(self, key: str) -> bytes:
        check_key(key)
        s3 = await self._s3("get")
        try:
            response = await s3.get_object(Bucket=self._location.bucket, Key=self.object_key(key))
            async with response["Body"] as body:
                data: bytes = await body.read()
        except ClientError as exc:
            if _error_code(exc) in _MISSING_CODES:
                raise missing(key) from exc
            raise unavailable(self.kind, COMPONENT, "get", exc) from exc
        except _FAILURES as exc:
            raise unavailable(self.kind, COMPONENT, "get", exc) from exc
        if await asyncio.to_thread(content_key, data) != key:
            IMAGE_STORE_FAILURES.labels(self.kind, "get").inc()
            raise BackendUnavailable(
                COMPONENT, f"object {self.object_key(key)} does not hold the original it names"
            )
        return data

    async def exists(self, key: str) -> bool:
        try:
            check_key(key)
        except NotFound:
            return False
        s3 = await self._s3("exists")
        try:
            # Not HEAD: its bodiless 404 cannot tell a missing object from a missing bucket
            # (which is an outage). One byte of the object tells them apart.
            response = await s3.get_object(
                Bucket=self._location.bucket, Key=self.object_key(key), Range="bytes=0-0"
            )
            async with response["Body"] as body:
                await body.read()
        except ClientError as exc:
            if _error_code(exc) in _MISSING_CODES:
                return False
            if _error_code(exc) == "InvalidRange":  # an empty object: there all the same
                return True
            raise unavailable(self.kind, COMPONENT, "exists", exc) from exc
        except _FAILURES as exc:
            raise unavailable(self.kind, COMPONENT, "exists", exc) from exc
        return True

    async def delete(self, key: str) -> None:
        try:
            check_key(key)
        except NotFound:
            return
        s3 = await self._s3("delete")
        try:
            # S3 answers a delete of a missing key with success too.
            await s3.delete_object(Bucket=self._location.bucket, Key=self.object_key(key))
        except _FAILURES as exc:
            raise unavailable(self.kind, COMPONENT, "delete", exc) from exc

    async def start(self) -> None:
        await self._s3("start")

    async def stop(self) -> None:
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            await stack.aclose()
