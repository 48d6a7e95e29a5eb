"""Tracking dashboard queries on MariaDB at one million events in one site (ten with --large).

Seeds a throw-away database (migrated, ``track_events`` partitioned by month over the data) with
one site's year of traffic: sessions of 1 to 9 events in time order, about 3% of them with an
intent, 30% with a click id, through ``LOAD DATA LOCAL INFILE``. Then times each dashboard call
(the feature functions the routes call, each on a fresh pooled connection, as a request does)
over ranges of 1 and 30 days (always counted exactly from raw rows) and 365 days: first before
any rollup exists (every raw row scanned: the worst case), then after the year is rolled up as
the maintenance job does (sessions of closed days from rollups, intents one by one), then with
the site's retention at one month (eleven months wholly from rollups).

    .venv/bin/python bench/bench_tracking_dashboard.py [--mariadb-url URL] [--large]
        [--events N] [--repeat N] [--keep]

Prints a table (p50/p99 per query and range, over repeated calls) and writes
bench/results/tracking_dashboard.json.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
import pymysql  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from service.db import Database  # noqa: E402
from service.db.migrate import migrate  # noqa: E402
from service.tracking import partitions  # noqa: E402
from service.tracking.dashboard import SiteView, breakdown, kpis, timeline  # noqa: E402
from service.tracking.dashboard_ledger import LedgerFilter, ledger_page  # noqa: E402
from service.tracking.dashboard_sessions import session_timeline  # noqa: E402
from service.tracking.dashboard_time import Period  # noqa: E402
from service.tracking.rollups import roll_days  # noqa: E402
from service.tracking.rollups_horizon import Horizon  # noqa: E402
from service.tracking.scope import SiteScope  # noqa: E402

ZONE = "Europe/Istanbul"
DAYS = 365
SOURCES = [
    ("google", 40),
    ("(direct)", 25),
    ("facebook", 10),
    ("instagram", 8),
    ("bing", 5),
    ("newsletter", 5),
    ("t.co", 4),
    ("yandex", 3),
]
DEVICES = [("mobile", 60), ("desktop", 35), ("tablet", 5)]
COUNTRIES = ["TR", "DE", "NL", "GB", "FR", "US", "AT", "CH", "AZ", "RU", "\\N"]
LANDINGS = [f"/tr/projects/{n}" for n in range(150)] + [f"/en/p/{n}" for n in range(50)]
STATUSES = [("pending", 50), ("confirmed", 20), ("junk", 25), ("cancelled", 5)]
CHUNK = 200_000


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def _weighted(rng: random.Random, pairs: list[tuple[str, int]]) -> Callable[[], str]:
    values = [v for v, _ in pairs]
    weights = [w for _, w in pairs]
    return lambda: rng.choices(values, weights)[0]


def _ts(instant: datetime) -> str:
    return instant.strftime("%Y-%m-%d %H:%M:%S.%f")


class Loader:
    """``LOAD DATA LOCAL INFILE`` of tab-separated rows written to a temporary file."""

    def __init__(self, conn: pymysql.connections.Connection, folder: Path) -> None:
        self.conn = conn
        self.folder = folder

    def load(self, table: str, columns: list[str], rows: list[str]) -> None:
        path = self.folder / f"{table}.tsv"
        path.write_text("\n".join(rows) + "\n", encoding="utf-8")
        with self.conn.cursor() as cur:
            cur.execute(
                f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE {table} "
                "CHARACTER SET utf8mb4 FIELDS TERMINATED BY '\\t' LINES TERMINATED BY '\\n' "
                f"({', '.join(columns)})"
            )
        self.conn.commit()


def seed(params: dict[str, Any], site_id: int, events: int, now: datetime) -> dict[str, int]:
    """One site's year of traffic with ``events`` events (5 per session on average); returns
    the counts."""
    rng = random.Random(16)
    source, device, status = (
        _weighted(rng, SOURCES),
        _weighted(rng, DEVICES),
        _weighted(rng, STATUSES),
    )
    conn = pymysql.connect(**params, local_infile=True, autocommit=False)
    counts = {"sessions": 0, "events": 0, "intents": 0}
    session_cols = [
        "id", "site_id", "visitor_id", "started_at", "last_seen_at", "page_views", "events",
        "landing_page", "referrer", "source", "medium", "campaign", "gclid", "device", "country",
    ]  # fmt: skip
    event_cols = [
        "id", "site_id", "session_id", "event_id", "kind", "name", "path", "occurred_at",
        "received_at",
    ]  # fmt: skip
    intent_cols = [
        "id", "site_id", "session_id", "kind", "target", "stamp", "gclid", "status",
        "lead_score", "amount", "currency", "created_at", "updated_at",
    ]  # fmt: skip
    start = now - timedelta(days=DAYS)
    visitors = max(1, events // 8)
    with tempfile.TemporaryDirectory() as tmp:
        loader = Loader(conn, Path(tmp))
        sessions: list[str] = []
        rows: list[str] = []
        intents: list[str] = []
        session_id = 0
        # Sessions arrive in time order, as the ingest writes them (ids follow the clock).
        pace = DAYS * 86_400 / (events / 5)
        started = start
        while counts["events"] < events:
            session_id += 1
            started = min(now, started + timedelta(seconds=rng.expovariate(1 / pace)))
            n = min(rng.randint(1, 9), events - counts["events"])
            views = max(1, n - (1 if n > 2 else 0))
            gclid = f"Cj0K{session_id:012d}" if rng.random() < 0.3 else "\\N"
            landing = rng.choice(LANDINGS)
            src = "google" if gclid != "\\N" else source()
            sessions.append(
                "\t".join(
                    map(
                        str,
                        [
                            session_id, site_id, f"v_{rng.randrange(visitors):010d}",
                            _ts(started), _ts(started + timedelta(seconds=40 * n)), views, n,
                            landing, "\\N", src, "cpc" if gclid != "\\N" else "\\N", "\\N",
                            gclid, device(), rng.choice(COUNTRIES),
                        ],
                    )
                )
            )  # fmt: skip
            for k in range(n):
                at = _ts(started + timedelta(seconds=40 * k))
                counts["events"] += 1
                kind = "page_view" if k < views else "intent"
                rows.append(
                    f"{counts['events']}\t{site_id}\t{session_id}\te{counts['events']:012d}\t"
                    f"{kind}\t\\N\t{landing}\t{at}\t{at}"
                )
            if n > 2 and rng.random() < 0.04:  # about 3% of all sessions
                counts["intents"] += 1
                state = status()
                amount = f"{rng.randint(100, 90_000)}.00" if state == "confirmed" else "\\N"
                created = _ts(started + timedelta(seconds=40 * (n - 1)))
                kind = "phone" if rng.random() < 0.45 else "whatsapp"
                intents.append(
                    "\t".join(
                        map(
                            str,
                            [
                                counts["intents"], site_id, session_id, kind,
                                "tel:+905551112233", f"s{counts['events']:012d}", gclid, state,
                                rng.randint(0, 100), amount, "TRY", created, created,
                            ],
                        )
                    )
                )  # fmt: skip
            if len(rows) >= CHUNK:
                loader.load("track_sessions", session_cols, sessions)
                loader.load("track_events", event_cols, rows)
                sessions, rows = [], []
        if rows or sessions:
            loader.load("track_sessions", session_cols, sessions)
            loader.load("track_events", event_cols, rows)
        loader.load("track_intents", intent_cols, intents)
    counts["sessions"] = session_id
    with conn.cursor() as cur:
        for table in ("track_sessions", "track_events", "track_intents"):
            cur.execute(f"ANALYZE TABLE {table}")
            cur.fetchall()
    conn.close()
    return counts


async def _create(url: str) -> tuple[str, dict[str, Any], Callable[[], None]]:
    base = make_url(url)
    name = f"kervan_bench_{uuid.uuid4().hex[:8]}"
    params = {
        "host": base.host or "127.0.0.1",
        "port": base.port or 3306,
        "user": base.username or "root",
        "password": base.password or "",
    }
    conn = pymysql.connect(**params)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    conn.close()

    def drop() -> None:
        c = pymysql.connect(**params)
        with c.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        c.close()

    return (
        base.set(database=name).render_as_string(hide_password=False),
        {**params, "database": name},
        drop,
    )


async def _prepare(db: Database, now: datetime) -> int:
    """Migrate, partition the events by month over the year, create the site."""
    await migrate(db)
    first = partitions.month_of(now - timedelta(days=DAYS + 31))
    months = [first]
    while months[-1] < partitions.month_of(now):
        months.append(partitions.next_month(months[-1]))
    for _ in range(3):
        months.append(partitions.next_month(months[-1]))
    parts = ", ".join([*(partitions.partition_sql(m) for m in months), partitions.CATCH_ALL_SQL])
    async with db.begin() as conn:
        await conn.execute(text("ALTER TABLE track_events REMOVE PARTITIONING"))
        await conn.execute(
            text(f"ALTER TABLE track_events PARTITION BY RANGE COLUMNS(received_at) ({parts})")
        )
        result = await conn.execute(
            text(
                "INSERT INTO sites (public_key, name, domains, currency, time_zone, config, "
                "created_at, updated_at) VALUES ('st_bench', 'Bench', '[\"bench.example\"]', "
                "'TRY', :zone, '{}', :now, :now)"
            ),
            {"zone": ZONE, "now": now.replace(tzinfo=None)},
        )
        return int(result.lastrowid)


Call = Callable[[], Awaitable[Any]]


async def _time(call: Call, repeat: int, budget: float) -> dict[str, float]:
    await call()  # warm: the first call pays for cold pages, not the query plan
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < repeat and (len(times) < 5 or time.perf_counter() - started < budget):
        t0 = time.perf_counter()
        await call()
        times.append((time.perf_counter() - t0) * 1000)
    return {
        "p50_ms": round(percentile(times, 50), 2),
        "p99_ms": round(percentile(times, 99), 2),
        "mean_ms": round(statistics.fmean(times), 2),
        "calls": len(times),
    }


def _calls(db: Database, view: SiteView, period: Period) -> dict[str, Call]:
    async def on_conn(work: Callable[[Any], Awaitable[Any]]) -> Any:
        async with db.connect() as conn:
            return await work(conn)

    bucket = "hour" if period.days == 1 else "day"
    flt = LedgerFilter(start=period.start, end=period.end)
    confirmed = LedgerFilter(status="confirmed", start=period.start, end=period.end)
    calls: dict[str, Call] = {
        "kpis": lambda: on_conn(lambda c: kpis(c, view, period)),
        f"timeline ({bucket})": lambda: on_conn(
            lambda c: timeline(c, view, period, bucket, ads_only=False)  # type: ignore[arg-type]
        ),
        "timeline ads only": lambda: on_conn(
            lambda c: timeline(c, view, period, "day", ads_only=True)
        ),
    }
    for dimension in ("source", "device", "landing", "country"):
        calls[f"breakdown {dimension}"] = (
            lambda d=dimension: on_conn(lambda c: breakdown(c, view, period, d, 10))  # type: ignore[misc]
        )
    calls["intents page 1"] = lambda: on_conn(lambda c: ledger_page(c, view.scope, flt, limit=50))
    calls["intents confirmed"] = lambda: on_conn(
        lambda c: ledger_page(c, view.scope, confirmed, limit=50)
    )
    return calls


async def main(args: argparse.Namespace) -> dict[str, Any]:
    logging.disable(logging.WARNING)
    events = args.events or (10_000_000 if args.large else 1_000_000)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    url, params, drop = await _create(args.mariadb_url)
    db = Database(url, pool_size=4)
    zone = ZoneInfo(ZONE)
    results: dict[str, dict[str, dict[str, float]]] = {}
    try:
        site_id = await _prepare(db, now)
        t0 = time.perf_counter()
        counts = await asyncio.to_thread(seed, params, site_id, events, now)
        seeded_s = time.perf_counter() - t0
        print(
            f"seeded {counts['events']:,} events, {counts['sessions']:,} sessions, "
            f"{counts['intents']:,} intents in {seeded_s:.0f}s",
            flush=True,
        )
        scope = SiteScope(
            site_id=site_id, role="admin", actor="bench", time_zone=ZONE, currency="TRY"
        )
        today = now.astimezone(zone).date()
        raw = SiteView(scope, zone, Horizon.of(now, 13, zone), today)
        ranges = {
            "1 day": Period(today - timedelta(days=1), today - timedelta(days=1), zone),
            "30 days": Period(today - timedelta(days=30), today - timedelta(days=1), zone),
            "365 days, no rollups yet": Period(
                today - timedelta(days=365), today - timedelta(days=1), zone
            ),
        }
        for label, period in ranges.items():
            print(f"timing {label} ...", flush=True)
            results[label] = {
                name: await _time(call, args.repeat, args.budget)
                for name, call in _calls(db, raw, period).items()
            }
        # The maintenance job's rollups of the year, then the same year again: the sessions of
        # closed days from rollups, intents counted one by one; and with a month's retention,
        # the eleven expired months wholly from rollups.
        t0 = time.perf_counter()
        year = ranges["365 days, no rollups yet"]
        first = year.first
        while first <= year.last:
            last = min(year.last, first + timedelta(days=30))
            async with db.begin() as conn:
                await roll_days(conn, scope, Period(first, last, zone))
            first = last + timedelta(days=1)
        rolled_s = time.perf_counter() - t0
        print(f"rolled up {DAYS} days in {rolled_s:.1f}s", flush=True)
        expired = SiteView(scope, zone, Horizon.of(now, 1, zone), today)
        for label, view in (("365 days", raw), ("365 days, 11 months expired", expired)):
            print(f"timing {label} ...", flush=True)
            results[label] = {
                name: await _time(call, args.repeat, args.budget)
                for name, call in _calls(db, view, year).items()
                if not name.startswith("intents")  # the ledger reads intents only: as above
            }
        async with db.connect() as conn:
            busiest = (
                await conn.execute(
                    text(
                        "SELECT id FROM track_sessions WHERE site_id = :s ORDER BY events DESC "
                        "LIMIT 1"
                    ),
                    {"s": site_id},
                )
            ).scalar_one()

        async def one_session() -> Any:
            async with db.connect() as conn:
                return await session_timeline(conn, scope, busiest)

        results["any"] = {"session timeline": await _time(one_session, args.repeat, args.budget)}
    finally:
        await db.dispose()
        if not args.keep:
            drop()
    return {
        "bench": "tracking_dashboard",
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "data": {**counts, "site_time_zone": ZONE, "seed_seconds": round(seeded_s, 1)},
        "rollup_seconds_365_days": round(rolled_s, 1),
        "results": results,
    }


def print_table(report: dict[str, Any]) -> None:
    data = report["data"]
    print(
        f"\n{data['events']:,} events, {data['sessions']:,} sessions, {data['intents']:,} "
        f"intents in one site"
    )
    header = f"{'range':34} {'query':22} {'p50 ms':>9} {'p99 ms':>9} {'calls':>6}"
    print(header)
    print("-" * len(header))
    for label, queries in report["results"].items():
        for name, r in queries.items():
            print(f"{label:34} {name:22} {r['p50_ms']:>9.1f} {r['p99_ms']:>9.1f} {r['calls']:>6}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mariadb-url", default="mariadb+aiomysql://root@127.0.0.1:3306/test")
    parser.add_argument("--large", action="store_true", help="10 million events")
    parser.add_argument("--events", type=int, default=0, help="override the event count")
    parser.add_argument("--repeat", type=int, default=30, help="timed calls per query")
    parser.add_argument("--budget", type=float, default=20.0, help="seconds per query at most")
    parser.add_argument("--keep", action="store_true", help="keep the seeded database")
    args = parser.parse_args()
    report = asyncio.run(main(args))
    print_table(report)
    name = "tracking_dashboard_large" if args.large else "tracking_dashboard"
    out = ROOT / "bench" / "results" / f"{name}.json"
    out.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    print(f"\nwrote {out.relative_to(ROOT)}")
