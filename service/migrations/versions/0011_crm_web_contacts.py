"""crm: a live-support customer's id on its contact, so the mapping survives the state backend

Revision ID: 0011_crm_web_contacts
Revises: 0006_crm
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_crm_web_contacts"
down_revision = "0006_crm"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("crm_contacts") as batch:  # SQLite rebuilds the table
        batch.add_column(sa.Column("web_id", sa.String(64), nullable=True))
        batch.create_unique_constraint("uq_crm_contacts_web_id", ["web_id"])


def downgrade() -> None:
    with op.batch_alter_table("crm_contacts") as batch:
        batch.drop_constraint("uq_crm_contacts_web_id", type_="unique")
        batch.drop_column("web_id")
