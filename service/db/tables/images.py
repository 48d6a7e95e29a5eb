"""Progressive images: one row per ingested image; the bytes live in the original store."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, Text

from service.db.metadata import metadata
from service.db.types import UTCDateTime

images = Table(
    "images",
    metadata,
    Column("id", String(32), primary_key=True),
    # SHA-256 of the original: its key in the original store and part of every variant ETag.
    Column("content_key", String(64), nullable=False),
    Column("input_format", String(8), nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("alt", Text, nullable=False),
    Column("blurhash", String(100), nullable=False),
    Column("preview", Text, nullable=False),
    Column("dominant_color", String(7), nullable=False),
    Column("source_url", Text, nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Index("ix_images_content_key", "content_key"),
)
