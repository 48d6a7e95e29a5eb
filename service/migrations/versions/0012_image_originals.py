"""images: originals as chunked blobs in the database (KERVAN_IMAGES_STORAGE=database)

Revision ID: 0012_image_originals
Revises: 0007_images
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

from service.db.types import UTCDateTime

revision = "0012_image_originals"
down_revision = "0007_images"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "image_originals",
        sa.Column("content_key", sa.String(64), nullable=False),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("chunks", sa.Integer, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("content_key", name="pk_image_originals"),
    )
    op.create_table(
        "image_original_chunks",
        sa.Column("content_key", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False, autoincrement=False),
        # A chunk is at most 1 MiB: MariaDB's BLOB holds 64 KiB, MEDIUMBLOB 16 MiB.
        sa.Column(
            "data",
            sa.LargeBinary().with_variant(mysql.MEDIUMBLOB(), "mysql", "mariadb"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("content_key", "seq", name="pk_image_original_chunks"),
        sa.ForeignKeyConstraint(
            ["content_key"],
            ["image_originals.content_key"],
            name="fk_image_original_chunks_content_key_image_originals",
            ondelete="CASCADE",
        ),
    )


def downgrade() -> None:
    op.drop_table("image_original_chunks")
    op.drop_table("image_originals")
