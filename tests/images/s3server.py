"""A local server speaking the S3 wire protocol (moto's server mode), for the ``s3`` storage.

No real object store is installable here; moto answers the same HTTP API (signatures, errors,
path-style addressing) from a process of its own, so the client is exercised end to end.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.services import free_port, unavailable

REGION = "us-east-1"
ACCESS_KEY_ID = "kervan-test"
SECRET_ACCESS_KEY = "kervan-test-secret"


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/moto-api/", timeout=1.0).status_code < 500
    except httpx.HTTPError:
        return False


@contextmanager
def s3_server(folder: Path, *, start_timeout: float = 60.0) -> Iterator[str]:
    """``python -m moto.server`` on a free port of 127.0.0.1; yields its endpoint URL."""
    if importlib.util.find_spec("moto") is None:
        unavailable("moto[server] is not installed (a local S3 server for the s3 storage)")
    last_log = ""
    for _ in range(3):
        port = free_port()
        log = folder / f"moto-{port}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + start_timeout
        while process.poll() is None and time.monotonic() < deadline:
            if _answers(url):
                break
            time.sleep(0.05)
        else:
            _stop(process)
            last_log = log.read_text(errors="replace")[-2000:]
            continue
        try:
            yield url
        finally:
            _stop(process)
        return
    raise RuntimeError(f"moto's S3 server did not start in 3 tries:\n{last_log}")


def s3_settings(endpoint: str, bucket: str, **overrides: Any) -> dict[str, Any]:
    """The settings of an app whose originals live in ``bucket`` of the local S3 server."""
    values: dict[str, Any] = {
        "images_storage": "s3",
        "images_s3_endpoint_url": endpoint,
        "images_s3_bucket": bucket,
        "images_s3_region": REGION,
        "images_s3_access_key_id": ACCESS_KEY_ID,
        "images_s3_secret_access_key": SECRET_ACCESS_KEY,
        "images_s3_path_style": True,
    }
    values.update(overrides)
    return values


def create_bucket(endpoint: str, bucket: str) -> None:
    client = s3_client(endpoint)
    client.create_bucket(Bucket=bucket)


def s3_client(endpoint: str) -> Any:
    """A plain synchronous boto3 client, to look at the bucket from outside kervan."""
    import boto3  # type: ignore[import-untyped]
    from botocore.config import Config  # type: ignore[import-untyped]

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
        config=Config(s3={"addressing_style": "path"}),
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
