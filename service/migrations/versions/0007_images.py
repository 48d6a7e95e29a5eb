"""images: one row per ingested progressive image

Revision ID: 0007_images
Revises: 0001_foundation
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from service.db.types import UTCDateTime

revision = "0007_images"
down_revision = "0001_foundation"
branch_labels = ("images",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "images",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("content_key", sa.String(64), nullable=False),
        sa.Column("input_format", sa.String(8), nullable=False),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("alt", sa.Text, nullable=False),
        sa.Column("blurhash", sa.String(100), nullable=False),
        sa.Column("preview", sa.Text, nullable=False),
        sa.Column("dominant_color", sa.String(7), nullable=False),
        sa.Column("source_url", sa.Text, nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_images"),
    )
    op.create_index("ix_images_content_key", "images", ["content_key"])


def downgrade() -> None:
    op.drop_index("ix_images_content_key", table_name="images")
    op.drop_table("images")
