"""Navigation flows: observed page-to-page transitions per segment, and a version per segment.

``flow_edges`` is keyed by (seg, from_path, to_path) with no surrogate id, so that the upsert's
conflict target is the table's only unique key (MariaDB resolves ON DUPLICATE KEY on any).
``flow_segments`` is the write lock and change counter of a segment: every write bumps
``version`` first, which serializes writers of one segment (probabilities stay exact) and tells
the speculation cache whether a new simulation is needed.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Double, String, Table

from service.db.metadata import metadata
from service.db.types import UTCDateTime

flow_edges = Table(
    "flow_edges",
    metadata,
    Column("seg", String(8), primary_key=True),
    Column("from_path", String(191), primary_key=True),
    Column("to_path", String(191), primary_key=True),
    Column("count", BigInteger, nullable=False),
    # count / (sum of count over the edges leaving from_path in seg); DOUBLE on MariaDB.
    Column("probability", Double, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

flow_segments = Table(
    "flow_segments",
    metadata,
    Column("seg", String(8), primary_key=True),
    Column("version", BigInteger, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)
