"""Image rows on both databases (SQLite and MariaDB): ingest writes, get reads back."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from core.errors import NotFound
from service.db import Database
from service.db.tables.foundation import audit_events
from service.images.facility import ImagesFacility
from service.settings import Settings
from tests.images import samples


async def test_ingest_and_read_back(
    database: Database, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    facility = ImagesFacility(make_settings(images_dir=tmp_path / "img"), database)
    data = samples.png(320, 240, seed=4)
    alt = "Çiçek / Blume / flower " * 20
    stored = await facility.ingest(data, alt, actor="admin:test")
    again = await facility.get(stored.facts.image_id)
    assert again == stored
    assert again.facts.alt == alt
    assert (again.facts.width, again.facts.height, again.input_format) == (320, 240, "png")
    assert await facility.originals.get(again.content_key) == data
    async with database.connect() as conn:
        audit = (
            await conn.execute(
                select(audit_events.c.action).where(
                    audit_events.c.subject == f"image:{stored.facts.image_id}"
                )
            )
        ).all()
    assert [row[0] for row in audit] == ["image.ingest"]
    with pytest.raises(NotFound):
        await facility.get("0" * 24)
    # Byte-exact on both databases (MariaDB's default collation ignores case).
    for variant in (stored.facts.image_id.upper(), stored.facts.image_id + " ", "x" * 24):
        with pytest.raises(NotFound):
            await facility.get(variant)
