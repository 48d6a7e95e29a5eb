"""trash: indexes for listing and purging soft-deleted intents, CRM contacts and notes

Revision ID: 0026_trash_indexes
Revises: 0024_ads_conversions (and needs 0006_crm)

A site's trash lists its deleted intents newest deletion first, and the purge job finds each
site's intents deleted before the retention cutoff: both are a range of
``(site_id, deleted_at)`` instead of a scan of all of the site's intents. Deleted CRM contacts
and notes are listed and purged by ``deleted_at`` across the CRM.
"""

from __future__ import annotations

from alembic import op

revision = "0026_trash_indexes"
down_revision = "0024_ads_conversions"
branch_labels = None
#: The CRM tables are on the ``crm`` branch.
depends_on = ("0006_crm",)

#: (table, name, columns)
INDEXES = (
    ("track_intents", "ix_track_intents_site_deleted", ["site_id", "deleted_at"]),
    ("crm_contacts", "ix_crm_contacts_deleted", ["deleted_at"]),
    ("crm_notes", "ix_crm_notes_deleted", ["deleted_at"]),
)


def upgrade() -> None:
    for table, name, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for table, name, _ in reversed(INDEXES):
        op.drop_index(name, table_name=table)
