"""Every statement the uploads issue on MariaDB - the seal, the claim, the outcomes, the job's
bookkeeping, the owners' reads - reads an ads table through an index (``EXPLAIN`` shows no
``type: ALL``), with other sites' rows in the tables."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event, insert

from service.db.tables.ads import ads_attempts, ads_uploads
from tests.ads.conftest import AdsRig
from tests.tracking.people_rig import ADMIN

ADS_TABLES = {"ads_connections", "ads_uploads", "ads_attempts"}


async def _busy_neighbours(ads: AdsRig, sites: list[int], rows: int) -> None:
    at = datetime.now(UTC)
    async with ads.rig.db.begin() as conn:
        for site in sites:
            await conn.execute(
                insert(ads_uploads),
                [
                    {
                        "site_id": site,
                        "intent_id": 10_000_000 * site + n,
                        "status": ("uploaded", "failed", "pending")[n % 3],
                        "reason": "EXPIRED_EVENT" if n % 3 == 1 else None,
                        "order_id": f"kervan-{site}-{n}",
                        "click_kind": "gclid",
                        "click_id": f"g-{site}-{n}",
                        "consent_subject": "s",
                        "conversion_at": at,
                        "value": Decimal("1.00"),
                        "currency": "EUR",
                        "attempts": 1,
                        "next_attempt_at": at,
                        "created_at": at,
                        "updated_at": at,
                    }
                    for n in range(rows)
                ],
            )
            await conn.execute(
                insert(ads_attempts),
                [
                    {
                        "site_id": site,
                        "intent_id": 10_000_000 * site + n,
                        "kind": "row",
                        "attempt": 1,
                        "outcome": "uploaded",
                        "at": at,
                    }
                    for n in range(rows)
                ],
            )


@pytest.mark.parametrize("stack", ["redis-mariadb"], indirect=True)
async def test_no_ads_statement_scans_a_table(ads: AdsRig) -> None:
    site = await ads.site("Explained")
    neighbours = [await ads.site(f"Busy {n}") for n in range(3)]
    for other in neighbours:
        await ads.connect(other, customer="999-999-9999")
    await _busy_neighbours(ads, neighbours, 600)
    async with ads.rig.db.connect() as conn:
        raw = await conn.get_raw_connection()
        cursor = await raw.driver_connection.cursor()
        for table in ADS_TABLES:
            await cursor.execute(f"ANALYZE TABLE {table}")
        await cursor.close()

    plans: list[tuple[str, list[dict[str, Any]]]] = []

    def listen(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        head = statement.lstrip().split(None, 1)[0].upper()
        if many or head not in ("SELECT", "UPDATE", "DELETE"):
            return
        if not any(table in statement for table in ADS_TABLES):
            return
        cursor.execute("EXPLAIN " + statement, parameters)
        names = [column[0] for column in cursor.description]
        plans.append((statement, [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]))

    engine = ads.rig.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", listen)
    try:
        await ads.connect(site)
        ads.google.fail_click("g-bad", "EXPIRED_EVENT")
        ads.google.fail_click("g-recent", "TOO_RECENT_EVENT")
        bad = await ads.sale(site, "g-bad", subject="a")
        await ads.sale(site, "g-recent", subject="b")
        await ads.sale(site, "g-good", subject="c")
        await ads.drain()
        for url in (
            f"/t/sites/{site}/ads/connection",
            f"/t/sites/{site}/ads/uploads",
            f"/t/sites/{site}/ads/uploads?status=failed",
            f"/t/sites/{site}/ads/uploads?status=pending&reason=TOO_RECENT_EVENT&before=99999999",
            f"/t/sites/{site}/ads/uploads/{bad}",
            f"/t/sites/{site}/ads/summary",
        ):
            assert (await ads.client.get(url, headers=ADMIN)).status_code == 200, url
        await ads.connect(site, action="5", token=None)  # the connect's bookkeeping
        assert (
            await ads.client.post(f"/t/sites/{site}/ads/uploads/{bad}/retry", headers=ADMIN)
        ).status_code == 200
        await ads.drain()
        await ads.client.delete(f"/t/sites/{site}/ads/connection", headers=ADMIN)
        await ads.later(7 * 3600)  # the job finds no connection
    finally:
        event.remove(engine, "before_cursor_execute", listen)
    scans = [
        f"{statement}\n  -> {row}"
        for statement, plan in plans
        for row in plan
        if row["type"] == "ALL" and row["table"] in ADS_TABLES
    ]
    assert len(plans) > 30
    assert not scans, "\n\n".join(scans)
    claims = [plan for statement, plan in plans if "SKIP LOCKED" in statement]
    assert claims and all(
        row["key"] == "ix_ads_uploads_due"
        for plan in claims
        for row in plan
        if row["table"] == "ads_uploads"
    )
    # The site's deleted intents (the trash: service/tracking/trash.py) are a range of its own.
    assert all(
        row["key"] == "ix_track_intents_site_deleted"
        for plan in claims
        for row in plan
        if row["table"] == "track_intents"
    )
