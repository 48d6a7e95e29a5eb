"""CSV export of one million intents: rows/s and peak RSS of the exporting process, on SQLite and
MariaDB, kervan's streamed export beside two baselines.

Seeds a throw-away database (a SQLite file, a MariaDB database) with one site's year:
``--rows`` intents on half as many sessions, 30% of the sessions with a click id, 80% with a
consent subject (50,000 subjects: ads consent granted, expired or refused, analytics mostly
granted). Each variant then exports every intent of the year in a process of its own (started
fresh, so its peak RSS is its own: ``VmHWM``), which counts the bytes and drops them:

- ``kervan``: ``service.tracking.export.csv_chunks``, the code the route streams (keyset pages
  of 5,000 rows, each on a short read of its own; consent read per page; cells formula-escaped;
  64 KiB chunks).
- ``server-side cursor``: the same query, encoding and consent blanking over one streamed
  result (``conn.stream``: ``SSCursor`` on aiomysql), consent read on a second connection since
  the streaming one is busy until the result is drained.
- ``naive``: ``fetchall()`` of the same query, then ``csv.writer`` into one string (what a
  non-streaming ``Response`` would send; no consent blanking, no formula escaping).

    .venv/bin/python bench/bench_export.py [--rows 1000000] [--mariadb-url URL] [--no-mariadb]
        [--no-sqlite] [--keep]

Prints a table and writes bench/results/export.json.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import logging
import os
import platform
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
import pymysql  # noqa: E402
from sqlalchemy import select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from core.tracking.csv_export import CellFormat, header  # noqa: E402
from service.db import Database  # noqa: E402
from service.db.migrate import migrate  # noqa: E402
from service.tracking.export import (  # noqa: E402
    ExportProgress,
    csv_chunks,
    export_window,
)
from service.tracking.export_consent import PageBlanker  # noqa: E402
from service.tracking.export_kinds import INTENTS, Window  # noqa: E402
from service.tracking.scope import SiteScope  # noqa: E402

ZONE = "Europe/Istanbul"
DAYS = 360
SUBJECTS = 50_000
VARIANTS = ("kervan", "server-side cursor", "naive")
SESSION_COLUMNS = [
    "id", "site_id", "visitor_id", "started_at", "last_seen_at", "page_views", "events",
    "landing_page", "referrer", "source", "medium", "campaign", "gclid", "device", "country",
    "consent_subject",
]  # fmt: skip
INTENT_COLUMNS = [
    "id", "site_id", "session_id", "kind", "target", "stamp", "gclid", "status", "lead_score",
    "amount", "currency", "sealed_at", "created_at", "updated_at",
]  # fmt: skip


def _ts(instant: datetime) -> str:
    return instant.strftime("%Y-%m-%d %H:%M:%S.%f")


# ---------------------------------------------------------------- seeding


def generate(site_id: int, rows: int, now: datetime) -> tuple[list[tuple[Any, ...]], ...]:
    """Sessions, intents and consent states (as column tuples; None is NULL)."""
    rng = random.Random(17)
    start = now - timedelta(days=DAYS)
    sessions: list[tuple[Any, ...]] = []
    intents: list[tuple[Any, ...]] = []
    pace = DAYS * 86_400 / (rows / 2)
    at = start
    for n in range(1, rows // 2 + 1):
        at = min(now - timedelta(minutes=5), at + timedelta(seconds=rng.expovariate(1 / pace)))
        gclid = f"Cj0KCQ{n:012d}" if rng.random() < 0.3 else None
        subject = f"subj-{rng.randrange(SUBJECTS):06d}" if rng.random() < 0.8 else None
        referrer = "https://search.example/?q=a,b" if rng.random() < 0.2 else None
        sessions.append(
            (
                n, site_id, f"v_{rng.randrange(rows):012d}", _ts(at),
                _ts(at + timedelta(minutes=4)), 3, 5, f"/tr/projects/{n % 150}", referrer,
                "google" if gclid else "(direct)", "cpc" if gclid else None, None, gclid,
                "mobile", "TR", subject,
            )
        )  # fmt: skip
        for k in range(2):
            created = at + timedelta(minutes=1 + k)
            confirmed = rng.random() < 0.2
            intents.append(
                (
                    2 * n - 1 + k, site_id, n, "phone" if k == 0 else "whatsapp",
                    "tel:+905551112233" if k == 0 else "https://wa.me/905551112233",
                    f"s{2 * n + k:012d}", gclid, "confirmed" if confirmed else "pending",
                    rng.randint(0, 100), f"{rng.randint(100, 90_000)}.00" if confirmed else None,
                    "TRY" if confirmed else None, _ts(created) if confirmed else None,
                    _ts(created), _ts(created),
                )
            )  # fmt: skip
    states: list[tuple[Any, ...]] = []
    real_now = time.time()
    for n in range(SUBJECTS):
        roll = rng.random()
        ads = "denied" if roll < 0.2 else "granted"
        expires = real_now - 86_400 if roll < 0.4 else real_now + 86_400 * 60
        purposes: dict[str, Any] = {
            "ads": {"value": ads, "ts": real_now - 86_400 * 30, "expires_at": expires,
                    "source": "banner", "banner_version": "1"},
        }  # fmt: skip
        if rng.random() < 0.9:
            purposes["analytics"] = {
                "value": "granted", "ts": real_now - 86_400 * 30,
                "expires_at": real_now + 86_400 * 150, "source": "banner", "banner_version": "1",
            }  # fmt: skip
        states.append((f"subj-{n:06d}", json.dumps(purposes), 1, "0" * 64))
    return sessions, intents, states


STATE_COLUMNS = ["subject", "purposes", "seq", "head_hash"]


def _chunks(items: list[tuple[Any, ...]], size: int) -> Iterator[list[tuple[Any, ...]]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def seed_sqlite(path: str, data: tuple[list[tuple[Any, ...]], ...]) -> None:
    sessions, intents, states = data
    conn = sqlite3.connect(path)
    for table, columns, rows in (
        ("track_sessions", SESSION_COLUMNS, sessions),
        ("track_intents", INTENT_COLUMNS, intents),
        ("consent_state", STATE_COLUMNS, states),
    ):
        marks = ", ".join("?" for _ in columns)
        for chunk in _chunks(rows, 50_000):
            conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", chunk)
        conn.commit()
    conn.execute("ANALYZE")
    conn.commit()
    conn.close()


def seed_mariadb(params: dict[str, Any], data: tuple[list[tuple[Any, ...]], ...]) -> None:
    sessions, intents, states = data
    conn = pymysql.connect(**params, local_infile=True, autocommit=False)

    def cell(value: Any) -> str:
        return "\\N" if value is None else str(value).replace("\t", " ").replace("\\", "\\\\")

    with tempfile.TemporaryDirectory() as tmp:
        for table, columns, rows in (
            ("track_sessions", SESSION_COLUMNS, sessions),
            ("track_intents", INTENT_COLUMNS, intents),
            ("consent_state", STATE_COLUMNS, states),
        ):
            for chunk in _chunks(rows, 200_000):
                path = Path(tmp) / f"{table}.tsv"
                path.write_text(
                    "".join("\t".join(cell(v) for v in row) + "\n" for row in chunk),
                    encoding="utf-8",
                )
                with conn.cursor() as cur:
                    cur.execute(
                        f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE {table} CHARACTER SET "
                        "utf8mb4 FIELDS TERMINATED BY '\\t' LINES TERMINATED BY '\\n' "
                        f"({', '.join(columns)})"
                    )
                conn.commit()
            with conn.cursor() as cur:
                cur.execute(f"ANALYZE TABLE {table}")
                cur.fetchall()
    conn.close()


async def _site(db: Database, now: datetime) -> int:
    async with db.begin() as conn:
        result = await conn.execute(
            text(
                "INSERT INTO sites (public_key, name, domains, currency, time_zone, config, "
                "created_at, updated_at) VALUES ('st_benchexport', 'Bench', "
                "'[\"bench.example\"]', 'TRY', :zone, '{}', :now, :now)"
            ),
            {"zone": ZONE, "now": now.replace(tzinfo=None)},
        )
        return int(result.lastrowid)


def _mariadb_database(url: str) -> tuple[str, dict[str, Any], Callable[[], None]]:
    base = make_url(url)
    name = f"kervan_bench_export_{uuid.uuid4().hex[:8]}"
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


# ---------------------------------------------------------------- the exporting process


def _status_kb(field: str) -> int:
    """``VmRSS`` (resident now) or ``VmHWM`` (its peak) of this process, in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


async def _kervan(db: Database, scope: SiteScope, window: Window, now: float) -> tuple[int, int]:
    progress = ExportProgress()
    size = 0
    async for chunk in csv_chunks(db, scope, INTENTS, window, consent_now=now, progress=progress):
        size += len(chunk)
    return progress.rows, size


def _full_query(scope: SiteScope, window: Window) -> Any:
    query = INTENTS.page(scope, window, None, 1)
    return query.limit(None)


async def _server_side(
    db: Database, scope: SiteScope, window: Window, now: float
) -> tuple[int, int]:
    fmt = CellFormat(ZoneInfo(scope.time_zone))
    blanker = PageBlanker(INTENTS.columns)
    size = len(header(c.name for c in INTENTS.columns).encode())
    rows = 0
    async with db.connect() as conn, db.connect() as consent_conn:
        result = await conn.stream(_full_query(scope, window))
        async for page in result.partitions(5_000):
            values = await blanker.apply(consent_conn, page, now)
            size += len("".join(fmt.row(cells) for cells in values).encode())
            rows += len(page)
    return rows, size


async def _naive(db: Database, scope: SiteScope, window: Window, now: float) -> tuple[int, int]:
    async with db.connect() as conn:
        found = (await conn.execute(_full_query(scope, window))).fetchall()
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([c.name for c in INTENTS.columns])
    writer.writerows(row[:-1] for row in found)
    body = buffer.getvalue().encode()
    return len(found), len(body)


async def child(args: argparse.Namespace) -> None:
    logging.disable(logging.WARNING)
    db = Database(args.url, pool_size=2)
    scope = SiteScope(site_id=args.site, role="admin", actor="bench", time_zone=ZONE)
    window = export_window(
        date.fromisoformat(args.first), date.fromisoformat(args.last), ZoneInfo(ZONE)
    )
    async with db.connect() as conn:  # connect and warm the pool before measuring the start
        await conn.execute(select(1))
    rss_start = _status_kb("VmRSS")
    run = {"kervan": _kervan, "server-side cursor": _server_side, "naive": _naive}[args.child]
    started = time.perf_counter()
    rows, size = await run(db, scope, window, args.now)
    seconds = time.perf_counter() - started
    await db.dispose()
    found = {"rows": rows, "bytes": size, "seconds": seconds, "rss_start_kb": rss_start}
    print(json.dumps({**found, "peak_rss_kb": _status_kb("VmHWM")}))


def run_child(
    variant: str, url: str, site: int, first: date, last: date, now: float
) -> dict[str, Any]:
    """One export in a fresh process. Its peak RSS is the child's own ``VmHWM``: the
    ``ru_maxrss`` that ``wait4`` reports also counts the parent's pages at the fork (Linux
    carries the high-water mark across ``exec``), and this parent holds the seed data."""
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(
            [
                sys.executable, __file__, "--child", variant, "--url", url, "--site", str(site),
                "--first", first.isoformat(), "--last", last.isoformat(), "--now", str(now),
            ],
            stdout=out,
        )  # fmt: skip
        if proc.wait() != 0:
            raise RuntimeError(f"{variant} exited with {proc.returncode}")
        out.seek(0)
        found: dict[str, Any] = json.loads(out.read().decode().strip().splitlines()[-1])
    return {
        "rows": found["rows"],
        "seconds": round(found["seconds"], 2),
        "rows_per_second": round(found["rows"] / found["seconds"]),
        "megabytes_out": round(found["bytes"] / 1e6, 1),
        "rss_start_mb": round(found["rss_start_kb"] / 1024, 1),
        "peak_rss_mb": round(found["peak_rss_kb"] / 1024, 1),
    }


# ---------------------------------------------------------------- the run


async def one_database(
    name: str, url: str, seed: Callable[[Any], None], rows: int
) -> dict[str, Any]:
    now = datetime.now(UTC).replace(microsecond=0)
    db = Database(url, pool_size=2)
    try:
        await migrate(db)
        site = await _site(db, now)
    finally:
        await db.dispose()
    t0 = time.perf_counter()
    seed(generate(site, rows, now))
    seeded = time.perf_counter() - t0
    print(f"{name}: seeded {rows:,} intents in {seeded:.0f}s", flush=True)
    zone = ZoneInfo(ZONE)
    last = now.astimezone(zone).date()
    first = last - timedelta(days=DAYS + 1)
    results: dict[str, Any] = {"seed_seconds": round(seeded, 1)}
    for variant in VARIANTS:
        print(f"{name}: {variant} ...", flush=True)
        results[variant] = run_child(variant, url, site, first, last, now.timestamp())
        if results[variant]["rows"] != rows:
            raise RuntimeError(f"{name} {variant}: {results[variant]['rows']} rows, not {rows}")
    return results


async def main(args: argparse.Namespace) -> dict[str, Any]:
    logging.disable(logging.WARNING)
    results: dict[str, Any] = {}
    if not args.no_sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            path = f"{tmp}/export.db"
            results["sqlite"] = await one_database(
                "sqlite", f"sqlite+aiosqlite:///{path}", lambda d: seed_sqlite(path, d), args.rows
            )
    if not args.no_mariadb:
        url, params, drop = _mariadb_database(args.mariadb_url)
        try:
            results["mariadb"] = await one_database(
                "mariadb", url, lambda d: seed_mariadb(params, d), args.rows
            )
        finally:
            if not args.keep:
                drop()
    return {
        "bench": "export",
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "rows": args.rows,
        "kind": "intents (with their sessions' attribution)",
        "results": results,
    }


def print_table(report: dict[str, Any]) -> None:
    print(f"\nCSV export of {report['rows']:,} intents, one process per variant")
    head = (
        f"{'database':9} {'variant':19} {'rows/s':>9} {'seconds':>8} {'MB out':>7} "
        f"{'RSS start MB':>13} {'peak RSS MB':>12}"
    )
    print(head)
    print("-" * len(head))
    for database, found in report["results"].items():
        for variant in VARIANTS:
            r = found[variant]
            print(
                f"{database:9} {variant:19} {r['rows_per_second']:>9,} {r['seconds']:>8.1f} "
                f"{r['megabytes_out']:>7.1f} {r['rss_start_mb']:>13.1f} {r['peak_rss_mb']:>12.1f}"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--mariadb-url", default="mariadb+aiomysql://root@127.0.0.1:3306/test")
    parser.add_argument("--no-mariadb", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the MariaDB database")
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--site", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--first", help=argparse.SUPPRESS)
    parser.add_argument("--last", help=argparse.SUPPRESS)
    parser.add_argument("--now", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        asyncio.run(child(args))
        raise SystemExit(0)
    report = asyncio.run(main(args))
    print_table(report)
    out = ROOT / "bench" / "results" / "export.json"
    out.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    print(f"\nwrote {out.relative_to(ROOT)}")
