"""audit: per-site and platform hash chains, request id and before/after on audit_events

Revision ID: 0025_audit_chain
Revises: 0024_ads_conversions

Rows written before this revision are chained here, in id order, exactly as ``record_audit``
chains new ones: a subject ``site:<id>`` puts a row in that site's chain, anything else in the
platform chain; their request id and before/after stay empty. Hashing them now cannot prove
they were not changed before this revision ran, only from then on.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from core.audit.chain import GENESIS, ChainHead, append, site_of_subject
from service.db.types import JSONType, UTCDateTime

revision = "0025_audit_chain"
down_revision = "0024_ads_conversions"
branch_labels = None
depends_on = None

BATCH = 1000

_events = sa.table(
    "audit_events",
    sa.column("id", sa.BigInteger()),
    sa.column("ts", UTCDateTime()),
    sa.column("actor", sa.String()),
    sa.column("action", sa.String()),
    sa.column("subject", sa.String()),
    sa.column("details", JSONType),
    sa.column("site_id", sa.BigInteger()),
    sa.column("chain", sa.BigInteger()),
    sa.column("seq", sa.BigInteger()),
    sa.column("prev_hash", sa.String()),
    sa.column("hash", sa.String()),
)
_heads = sa.table(
    "audit_heads",
    sa.column("chain", sa.BigInteger()),
    sa.column("seq", sa.BigInteger()),
    sa.column("head_hash", sa.String()),
    sa.column("updated_at", UTCDateTime()),
)


def upgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        batch.add_column(sa.Column("site_id", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("request_id", sa.String(128), nullable=True))
        batch.add_column(sa.Column("state_before", JSONType, nullable=True))
        batch.add_column(sa.Column("state_after", JSONType, nullable=True))
        batch.add_column(sa.Column("chain", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("seq", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("prev_hash", sa.String(64), nullable=True))
        batch.add_column(sa.Column("hash", sa.String(64), nullable=True))
    op.create_table(
        "audit_heads",
        sa.Column("chain", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("head_hash", sa.String(64), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=True),
    )
    _chain_existing_rows(op.get_bind())
    with op.batch_alter_table("audit_events") as batch:
        for name, kind in (
            ("chain", sa.BigInteger()),
            ("seq", sa.BigInteger()),
            ("prev_hash", sa.String(64)),
            ("hash", sa.String(64)),
        ):
            batch.alter_column(name, existing_type=kind, nullable=False)
        batch.create_unique_constraint("uq_audit_events_chain_seq", ["chain", "seq"])
    op.create_index("ix_audit_events_site_id", "audit_events", ["site_id", "id"])
    op.create_index("ix_audit_events_site_ts", "audit_events", ["site_id", "ts"])


def _chain_existing_rows(conn: Any) -> None:
    heads: dict[int, tuple[ChainHead, Any]] = {}
    last_id = 0
    while True:
        rows = conn.execute(
            sa.select(_events).where(_events.c.id > last_id).order_by(_events.c.id).limit(BATCH)
        ).all()
        if not rows:
            break
        updates = []
        for row in rows:
            site_id = site_of_subject(row.subject)
            head, _at = heads.get(site_id or 0, (GENESIS, None))
            record = append(
                head,
                site_id=site_id,
                ts=row.ts,
                actor=row.actor,
                action=row.action,
                subject=row.subject,
                details=row.details,
            )
            heads[record.chain] = (ChainHead(record.seq, record.hash), row.ts)
            updates.append(
                {
                    "row_id": row.id,
                    "new_site_id": site_id,
                    "new_chain": record.chain,
                    "new_seq": record.seq,
                    "new_prev_hash": record.prev_hash,
                    "new_hash": record.hash,
                }
            )
        conn.execute(
            sa.update(_events)
            .where(_events.c.id == sa.bindparam("row_id"))
            .values(
                site_id=sa.bindparam("new_site_id"),
                chain=sa.bindparam("new_chain"),
                seq=sa.bindparam("new_seq"),
                prev_hash=sa.bindparam("new_prev_hash"),
                hash=sa.bindparam("new_hash"),
            ),
            updates,
        )
        last_id = rows[-1].id
    if heads:
        conn.execute(
            sa.insert(_heads),
            [
                {"chain": chain, "seq": head.seq, "head_hash": head.hash, "updated_at": at}
                for chain, (head, at) in heads.items()
            ],
        )


def downgrade() -> None:
    op.drop_index("ix_audit_events_site_ts", table_name="audit_events")
    op.drop_index("ix_audit_events_site_id", table_name="audit_events")
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_constraint("uq_audit_events_chain_seq", type_="unique")
        for name in (
            "hash",
            "prev_hash",
            "seq",
            "chain",
            "state_after",
            "state_before",
            "request_id",
            "site_id",
        ):
            batch.drop_column(name)
    op.drop_table("audit_heads")
