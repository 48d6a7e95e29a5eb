"""The original store the settings ask for (``KERVAN_IMAGES_STORAGE``)."""

from __future__ import annotations

from pathlib import Path

from service.db import Database
from service.images.local_copy import LocallyCopiedOriginals
from service.images.settings import ImagesSettings
from service.images.storage import DiskOriginalStore, OriginalStore


def original_store(settings: ImagesSettings, db: Database, root: Path) -> OriginalStore:
    """``file``: under ``root/originals``; ``database`` and ``s3``: shared by every process,
    read through local copies beside the variants under ``root/variants``."""
    max_bytes = settings.images_max_bytes
    if settings.images_storage == "file":
        return DiskOriginalStore(root / "originals", max_bytes=max_bytes)
    shared: OriginalStore
    if settings.images_storage == "database":
        from service.images.storage_database import DatabaseOriginalStore

        shared = DatabaseOriginalStore(db, max_bytes=max_bytes)
    else:
        # Imported only here: aiobotocore is needed by deployments that use an object store.
        from service.images.storage_s3 import S3Location, S3OriginalStore

        shared = S3OriginalStore(S3Location.from_settings(settings), max_bytes=max_bytes)
    # Originals stored while the setting was still ``file`` are moved over when first read.
    legacy = DiskOriginalStore(root / "originals")
    return LocallyCopiedOriginals(shared, root / "variants", legacy=legacy)
