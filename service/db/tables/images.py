"""Progressive images: one row per ingested image; the bytes live in the original store.

With ``KERVAN_IMAGES_STORAGE=database`` that store is the two ``image_original*`` tables: an
original is cut into chunks of at most ``ORIGINAL_CHUNK_BYTES``, so no statement comes near
MariaDB's ``max_allowed_packet`` (16 MiB by default, less than the largest original allowed).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
)
from sqlalchemy.dialects import mysql

from service.db.metadata import metadata
from service.db.types import UTCDateTime

#: 1 MiB: a chunk's INSERT stays far below any max_allowed_packet, even escaped.
ORIGINAL_CHUNK_BYTES = 1024 * 1024

#: MariaDB's BLOB holds 64 KiB; MEDIUMBLOB 16 MiB, room for a chunk. SQLite's BLOB has no bound.
ChunkBlob = LargeBinary().with_variant(mysql.MEDIUMBLOB(), "mysql", "mariadb")

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

# Written in one transaction with its chunks: a row here means the whole original is stored.
image_originals = Table(
    "image_originals",
    metadata,
    # Always a checked lower-case SHA-256 hex string, so no collation can confuse two keys.
    Column("content_key", String(64), primary_key=True),
    Column("bytes", BigInteger, nullable=False),
    Column("chunks", Integer, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
)

image_original_chunks = Table(
    "image_original_chunks",
    metadata,
    Column(
        "content_key",
        String(64),
        ForeignKey("image_originals.content_key", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("data", ChunkBlob, nullable=False),
)
