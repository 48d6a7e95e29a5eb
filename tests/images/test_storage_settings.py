"""The originals' storage settings, validated at start-up with the offending key named."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest

from service.db import Database
from service.images.facility import ImagesFacility
from service.images.local_copy import LocallyCopiedOriginals
from service.images.storage import DiskOriginalStore
from service.images.storage_database import DatabaseOriginalStore
from service.images.storage_s3 import S3OriginalStore
from service.settings import Settings, SettingsError, load_settings

S3 = {"images_storage": "s3", "images_s3_bucket": "kervan-originals"}


def _load(**values: Any) -> Settings:
    return load_settings(_env_file=None, **values)


def test_file_is_the_default(make_settings: Callable[..., Settings], tmp_path: Path) -> None:
    settings = make_settings(images_dir=tmp_path)
    assert settings.images_storage == "file"
    facility = ImagesFacility(settings, cast(Database, None))
    assert isinstance(facility.originals, DiskOriginalStore)


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"images_storage": "s3", "images_s3_region": "eu-central-1"}, "KERVAN_IMAGES_S3_BUCKET"),
        ({**S3}, "KERVAN_IMAGES_S3_REGION"),
        (
            {**S3, "images_s3_region": "eu-west-1", "images_s3_access_key_id": "AKIA"},
            "KERVAN_IMAGES_S3_SECRET_ACCESS_KEY",
        ),
        (
            {**S3, "images_s3_region": "eu-west-1", "images_s3_secret_access_key": "x" * 40},
            "KERVAN_IMAGES_S3_ACCESS_KEY_ID",
        ),
        ({"images_storage": "disk"}, "KERVAN_IMAGES_STORAGE"),
        ({"images_s3_endpoint_url": "s3.example.com"}, "KERVAN_IMAGES_S3_ENDPOINT_URL"),
        ({"images_s3_endpoint_url": "https://u:p@s3.example.com"}, "KERVAN_IMAGES_S3_ENDPOINT_URL"),
        ({"images_s3_bucket": "a"}, "KERVAN_IMAGES_S3_BUCKET"),
        ({"images_s3_bucket": "bad/bucket"}, "KERVAN_IMAGES_S3_BUCKET"),
        ({"images_s3_prefix": "/absolute/"}, "KERVAN_IMAGES_S3_PREFIX"),
        ({"images_s3_timeout_seconds": 0}, "KERVAN_IMAGES_S3_TIMEOUT_SECONDS"),
    ],
)
def test_bad_storage_settings_name_the_key(values: dict[str, Any], key: str) -> None:
    with pytest.raises(SettingsError) as info:
        _load(**values)
    assert any(line.startswith(f"{key}:") for line in info.value.lines), info.value.lines


def test_an_endpoint_stands_in_for_the_region_and_empty_values_are_unset() -> None:
    settings = _load(
        **S3,
        images_s3_endpoint_url="https://minio.internal:9000/",
        images_s3_region="",
        images_s3_access_key_id="",
        images_s3_secret_access_key="",
    )
    assert settings.images_s3_endpoint_url == "https://minio.internal:9000"
    assert settings.images_s3_region is None
    assert settings.images_s3_access_key_id is None
    assert settings.images_s3_secret_access_key is None


def test_s3_settings_are_not_checked_for_other_storages() -> None:
    assert _load(images_storage="database").images_s3_bucket is None


def test_the_environment_configures_s3_and_the_secret_stays_masked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in {
        "KERVAN_IMAGES_STORAGE": "s3",
        "KERVAN_IMAGES_S3_BUCKET": "kervan-originals",
        "KERVAN_IMAGES_S3_REGION": "eu-central-1",
        "KERVAN_IMAGES_S3_ACCESS_KEY_ID": "AKIAEXAMPLE",
        "KERVAN_IMAGES_S3_SECRET_ACCESS_KEY": "do-not-print-this-secret",
        "KERVAN_IMAGES_S3_PATH_STYLE": "true",
    }.items():
        monkeypatch.setenv(name, value)
    settings = _load()
    assert settings.images_s3_path_style is True
    secret = settings.images_s3_secret_access_key
    assert secret is not None and secret.get_secret_value() == "do-not-print-this-secret"
    assert "do-not-print-this-secret" not in repr(settings)
    assert "do-not-print-this-secret" not in str(settings.model_dump(mode="json"))


@pytest.mark.parametrize(
    ("values", "shared"),
    [({"images_storage": "database"}, DatabaseOriginalStore), (S3, S3OriginalStore)],
)
def test_shared_storages_are_read_through_local_copies(
    make_settings: Callable[..., Settings],
    tmp_path: Path,
    values: dict[str, Any],
    shared: type,
) -> None:
    settings = make_settings(images_dir=tmp_path, images_s3_region="eu-central-1", **values)
    originals = ImagesFacility(settings, cast(Database, None)).originals
    assert isinstance(originals, LocallyCopiedOriginals)
    assert isinstance(originals.shared, shared)
    assert originals.kind == settings.images_storage
