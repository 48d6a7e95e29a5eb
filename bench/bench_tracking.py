"""Tracking events ingested per second through ``POST /t/sync``, one ``kervan serve`` process
(one granian worker), with latency percentiles, on SQLite and on MariaDB.

For each database (a throw-away SQLite file, then a throw-away MariaDB database):

1. ``kervan serve --migrate`` with the embedded backends; one site is created with the
   server's own code (``create_site``); the rate-limit policies ``tracking.ip`` and
   ``tracking.site`` are raised out of the way (one loopback client would hit them at once);
2. ``--connections`` concurrent senders (raw keep-alive HTTP/1.1, so the client costs far less
   CPU than the server) post batches for a fixed time per scenario, each sender being one
   visitor whose batches continue its session:

   - ``batch x50``: 50 new events per batch (page views, clicks, custom events, and a phone or
     WhatsApp intent now and then), the issue's figure;
   - ``batch x10``: 10 new events per batch (closer to what a page sends);
   - ``resend x50``: the same 50-event batch again and again (all duplicates).

A request counts only when answered 200; after each scenario the events stored during it
(warm-up included) are counted from the database, and the CPU that kervan's process tree and
MariaDB's server used per batch are read from /proc. Prints the table and writes
bench/results/tracking.json.

    .venv/bin/python bench/bench_tracking.py [--seconds 10] [--connections 64]
        [--mariadb-url URL] [--scenarios "batch x50"] [--no-sqlite]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import platform
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.loadgen import drive, free_port, kervan_server  # noqa: E402

ADMIN_KEY = "bench-admin-key"
RUN = uuid.uuid4().hex[:8]
ORIGIN = "https://shop.example.com"
PATHS = [f"/urun/{n}" for n in range(30)] + ["/", "/iletisim", "/hakkimizda", "/blog"]
UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)
REF_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
POLICIES = "tracking.ip=1000000/second burst 1000000; tracking.site=1000000/second burst 1000000"


class Senders:
    """Batches in the wire format: each call is the next batch of one of the visitors."""

    def __init__(self, site_key: str, visitors: int) -> None:
        self.site_key = site_key
        self.visitors = [f"v_bench{RUN}{n:012d}" for n in range(visitors)]
        self.turn = itertools.cycle(range(visitors))
        self.ids = itertools.count()
        self.first = [True] * visitors

    def events(self, count: int, now_ms: float) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for k in range(count):
            n = next(self.ids)
            path = PATHS[n % len(PATHS)]
            event: dict[str, Any] = {
                "id": f"e{RUN}{n:012d}",
                "ts": now_ms - (count - k) * 10,
                "url": f"https://shop.example.com{path}",
            }
            slot = n % 20
            if slot < 12:
                event.update(type="page_view", title=f"Sayfa {path}")
            elif slot < 17:
                event.update(type="click", name="cta-hero")
            elif slot < 19:
                event.update(type="custom", name="form_submit", props={"form": "contact"})
            elif n % 40 == 19:
                event.update(type="intent", intent={"kind": "phone", "target": "tel:+905551112233"})
            else:
                ref = "".join(
                    "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"[(n >> (5 * i)) % 32] for i in range(6)
                )
                event.update(
                    type="intent",
                    intent={"kind": "whatsapp", "target": "https://wa.me/905551112233", "ref": ref},
                )
            out.append(event)
        return out

    def body(self, count: int) -> bytes:
        visitor = next(self.turn)
        now_ms = time.time() * 1000
        landing = "https://shop.example.com/?utm_source=google&utm_medium=cpc&gclid=Cj0KCQbench"
        batch = {
            "site": self.site_key,
            "visitor": self.visitors[visitor],
            "sent_at": now_ms,
            "consent": {"analytics": True, "ads": True, "subject": None},
            "context": {
                "url": "https://shop.example.com/",
                "referrer": "https://www.google.com/",
                "user_agent_hint": "mobile",
                "language": "tr-TR",
                "screen": "390x844",
            },
            "landing": {"url": landing, "referrer": "https://www.google.com/"},
            "events": self.events(count, now_ms),
        }
        return orjson.dumps(batch)


def request(body: bytes, port: int) -> bytes:
    head = (
        f"POST /t/sync HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: {ORIGIN}\r\n"
        f"User-Agent: {UA}\r\nContent-Type: text/plain;charset=UTF-8\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def mariadb_database(base_url: str) -> tuple[str, Callable[[], None]]:
    import pymysql
    from sqlalchemy.engine import make_url

    url = make_url(base_url)
    name = f"kervan_bench_trk_{RUN}"
    params = {
        "host": url.host or "127.0.0.1",
        "port": url.port or 3306,
        "user": url.username or "root",
        "password": url.password or "",
    }
    conn = pymysql.connect(**params)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    conn.close()

    def drop() -> None:
        conn = pymysql.connect(**params)
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()

    return url.set(database=name).render_as_string(hide_password=False), drop


def fresh_database(label: str, base_url: str | None) -> tuple[str, Callable[[], None]]:
    if label == "sqlite":
        tmp = Path(tempfile.mkdtemp(prefix="kervan-trk-sqlite-"))
        return f"sqlite+aiosqlite:///{tmp / 'kervan.db'}", lambda: None
    assert base_url is not None
    return mariadb_database(base_url)


async def create_bench_site(database_url: str) -> str:
    from service.db import Database
    from service.tracking.sites import create_site

    db = Database(database_url)
    try:
        async with db.begin() as conn:
            site = await create_site(
                conn,
                name="Bench",
                domains=["shop.example.com"],
                currency="TRY",
                time_zone="Europe/Istanbul",
                now=datetime.now(UTC),
            )
        return site.public_key
    finally:
        await db.dispose()


async def stored_events(database_url: str) -> int:
    from sqlalchemy import func, select

    from service.db import Database
    from service.db.tables.tracking import track_events
    from service.tracking.scope import ALL_SITES

    db = Database(database_url)
    try:
        async with db.connect() as conn:
            await conn.execution_options(**ALL_SITES)
            return int(await conn.scalar(select(func.count()).select_from(track_events)) or 0)
    finally:
        await db.dispose()


async def durability(label: str, database_url: str) -> dict[str, Any]:
    from sqlalchemy import text

    from service.db import Database

    db = Database(database_url)
    try:
        async with db.connect() as conn:
            if label == "sqlite":
                return {
                    "journal_mode": await conn.scalar(text("PRAGMA journal_mode")),
                    "synchronous": await conn.scalar(text("PRAGMA synchronous")),
                }
            rows = await conn.execute(
                text(
                    "SHOW VARIABLES WHERE Variable_name IN ('innodb_flush_log_at_trx_commit',"
                    " 'sync_binlog', 'log_bin', 'innodb_buffer_pool_size', 'version')"
                )
            )
            return {str(r[0]): str(r[1]) for r in rows}
    finally:
        await db.dispose()


_TICK = os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as file:
                found += [int(c) for c in file.read().split()]
    except OSError:
        pass
    return found


def cpu_seconds(pid: int) -> float:
    """User plus system CPU of a process and its descendants (Linux /proc), 0 elsewhere."""
    total = 0.0
    stack = [pid]
    while stack:
        current = stack.pop()
        try:
            with open(f"/proc/{current}/stat") as file:
                fields = file.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / _TICK
        stack += _children(current)
    return total


def mariadb_pid() -> int | None:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as file:
                    if file.read().strip() in ("mariadbd", "mysqld"):
                        return int(entry)
            except OSError:
                continue
    return None


SCENARIOS: list[tuple[str, int, bool]] = [
    # name, events per batch, resend the same batch
    ("batch x50", 50, False),
    ("batch x10", 10, False),
    ("resend x50", 50, True),
]


async def run_database(label: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    url, drop = fresh_database(label, args.mariadb_url if label == "mariadb" else None)
    rows: list[dict[str, Any]] = []
    port = free_port()
    tmp = Path(tempfile.mkdtemp(prefix="kervan-trk-bench-"))
    env = {
        "KERVAN_RATELIMIT_POLICIES": POLICIES,
        "KERVAN_DATABASE_POOL_SIZE": str(args.pool_size),
    }
    try:
        settings = await durability(label, url) if label == "mariadb" else {}
        async with kervan_server(
            port,
            tmp,
            database_url=url,
            admin_key=ADMIN_KEY,
            root=ROOT,
            extra_env=env,
            log_path=tmp / "server.log",
        ) as server:
            db_pid = mariadb_pid() if label == "mariadb" else None
            key = await create_bench_site(url)
            if label == "sqlite":
                settings = await durability(label, url)
            senders = Senders(key, args.connections)
            for name, size, resend in SCENARIOS:
                if args.scenarios and name not in args.scenarios:
                    continue
                before = await stored_events(url)
                if resend:
                    fixed = request(senders.body(size), port)
                    # Stored once first, so that every timed request is all duplicates.

                    def make(fixed: bytes = fixed) -> bytes:
                        return fixed

                    await drive(port, make, (200,), 0.2, 1, warm_connections=1)
                else:

                    def make(size: int = size) -> bytes:
                        return request(senders.body(size), port)

                cpu_before = cpu_seconds(server.pid)
                db_before = cpu_seconds(db_pid) if db_pid else 0.0
                result = await drive(port, make, (200,), args.seconds, args.connections)
                cpu = cpu_seconds(server.pid) - cpu_before
                db_cpu = (cpu_seconds(db_pid) - db_before) if db_pid else 0.0
                stored = await stored_events(url) - before
                # Warm-up requests are served too; per answered request is close enough.
                served = max(1, result["requests"])
                per_request = 0 if resend else size
                events = result["per_second"] * per_request
                row = {
                    "database": label,
                    "scenario": name,
                    "events_per_batch": size,
                    "batches_per_second": result["per_second"],
                    "events_per_second": events,
                    # Warm-up batches count too: what the server stored in the whole scenario.
                    "events_stored": stored,
                    "server_cpu_ms_per_batch": cpu / served * 1000,
                    "database_cpu_ms_per_batch": db_cpu / served * 1000 if db_pid else None,
                    **{k: v for k, v in result.items() if k != "per_second"},
                }
                rows.append(row)
                print(
                    f"{label:<9}{name:<13}{result['per_second']:>10.0f}{events:>11.0f}"
                    f"{result['p50_ms']:>9.1f}{result['p99_ms']:>9.1f}{result['max_ms']:>9.1f}"
                    f"{result['errors']:>8}{stored:>10}{cpu / served * 1000:>9.2f}"
                    f"{db_cpu / served * 1000 if db_pid else float('nan'):>9.2f}",
                    flush=True,
                )
        for row in rows:
            row["durability"] = settings
    finally:
        drop()
    return rows


async def run(args: argparse.Namespace) -> dict[str, Any]:
    load_before = list(os.getloadavg())
    databases = ([] if args.no_sqlite else ["sqlite"]) + (["mariadb"] if args.mariadb_url else [])
    print(
        f"{'database':<9}{'scenario':<13}{'batches/s':>10}{'events/s':>11}{'p50 ms':>9}"
        f"{'p99 ms':>9}{'max ms':>9}{'errors':>8}{'stored':>10}{'cpu ms':>9}{'db ms':>9}"
    )
    print(f"{'':<84}(per batch: kervan's and MariaDB's CPU)")
    rows: list[dict[str, Any]] = []
    for label in databases:
        rows += await run_database(label, args)
    goal = 10_000
    best = {
        row["database"]: row["events_per_second"] for row in rows if row["scenario"] == "batch x50"
    }
    for database, rate in best.items():
        print(
            f"{database}: {rate:,.0f} events/s in batches of 50 (goal {goal:,}: {rate / goal:.0%})"
        )
    return {
        "bench": "tracking",
        "server": "kervan serve: granian, 1 worker, uvloop, memory backends, embedded queue worker",
        "client": f"raw asyncio keep-alive HTTP/1.1, {args.connections} concurrent senders",
        "seconds_per_scenario": args.seconds,
        "database_pool_size": args.pool_size,
        "rows": rows,
        "goal_events_per_second": goal,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_before": load_before,
            "load_average_after": list(os.getloadavg()),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--pool-size", type=int, default=10)
    parser.add_argument("--mariadb-url", default="mariadb+aiomysql://root@127.0.0.1:3306/")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument(
        "--scenarios",
        type=lambda value: [v.strip() for v in value.split(",") if v.strip()],
        help="comma-separated scenario names (default: all)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/tracking.json")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(asyncio.wait_for(run(args), timeout=600 + 8 * args.seconds))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
