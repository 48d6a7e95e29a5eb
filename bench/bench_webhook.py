"""Signed WhatsApp webhooks processed per second, with latency percentiles, one granian worker,
side by side with the bare-insert limits of the same database.

For each database, SQLite (the embedded default, a throw-away file) and then MariaDB (a
throw-away database):

1. **bare inserts**: what the database itself allows from Python through the same driver and
   engine settings kervan uses (``service.db.Database``: aiosqlite with WAL and
   ``synchronous=NORMAL``, aiomysql on InnoDB with the server's own durability settings, which
   are printed), into a scratch table shaped like ``wa_webhook_events`` with the same body:
   one row per transaction from one connection (one commit, so one fsync on MariaDB, per row),
   one row per transaction from ``--connections`` concurrent connections (InnoDB groups the
   fsyncs of concurrent commits itself; SQLite writers take turns on an asyncio lock, as
   kervan's do), and ``GROUP`` rows per transaction from one connection;
2. **kervan**: ``kervan serve`` (one worker, uvloop, loopback only) with the embedded queue
   worker running as in production, driven with correctly signed Cloud API payloads over
   keep-alive HTTP/1.1 connections (raw asyncio streams, so the client costs far less CPU
   than the server) for a fixed time per scenario:

   - ``text``: one new text message per delivery from one of 200 known customers (signature
     check, raw event row, contact and open conversation lookup, message row, conversation
     counters, live update) - the common case, the one issue 13 measures;
   - ``text new cust``: the same from a customer never seen before (contact and conversation
     are created too);
   - ``batch x5``: five new messages from five known customers in one delivery;
   - ``redelivery``: the same delivery again and again (WhatsApp retries): logged, deduplicated;
   - ``status``: a ``delivered`` status for an id the CRM does not know yet (parked);
   - ``bad signature``: refused with 401 before anything is parsed or stored (the floor);

3. with ``--baseline-tree DIR`` (a source tree of the code before group commit, e.g.
   ``git archive d8c7f42 | tar -x -C DIR`` plus a copy of ``native/*.so``), the ``text``
   scenario again on that tree's server, on a fresh database of the same kind.

A request counts only if answered 200 (401 for the last scenario). The summary puts kervan's
``text`` deliveries/s and p99 next to the bare-insert limits and to the figures before group
commit (measured in this run with ``--baseline-tree``, else the recorded ones: 212/s SQLite,
235/s MariaDB at 16 connections). Prints the tables and writes bench/results/webhook.json.

    .venv/bin/python bench/bench_webhook.py [--seconds 4] [--connections 64] [--mariadb-url URL]
        [--baseline-tree DIR] [--scenarios text,status]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import itertools
import os
import platform
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.loadgen import drive, free_port, kervan_server, read_response  # noqa: E402

APP_SECRET = "bench-app-secret"
ADMIN_KEY = "bench-admin-key"
CUSTOMERS = 200
RUN = uuid.uuid4().hex[:8]
#: Rows per transaction of the grouped bare insert (kervan's largest group, too).
GROUP = 64
#: ``text`` deliveries/s before group commit (bench/results/webhook.json of commit d8c7f42:
#: two transactions per delivery, 16 connections), used when no --baseline-tree runs.
RECORDED_BEFORE = {"sqlite": 212.2, "mariadb": 234.6}


def signed_request(body: bytes, secret: str = APP_SECRET) -> bytes:
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    head = (
        "POST /webhooks/wa HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"X-Hub-Signature-256: {signature}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def notification(messages: list[dict[str, Any]], statuses: list[dict[str, Any]]) -> bytes:
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
    }
    if messages:
        value["contacts"] = [
            {"profile": {"name": f"Customer {m['from'][-3:]}"}, "wa_id": m["from"]}
            for m in messages
        ]
        value["messages"] = messages
    if statuses:
        value["statuses"] = statuses
    return orjson.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [
                {"id": "102290129340398", "changes": [{"value": value, "field": "messages"}]}
            ],
        }
    )


_ids = itertools.count()


def text_message(n: int, sender: str | None = None) -> dict[str, Any]:
    return {
        "from": sender or f"90532{n % CUSTOMERS:07d}",
        "id": f"wamid.{RUN}.{n}",
        "timestamp": str(int(time.time())),
        "type": "text",
        "text": {"body": "Merhaba, siparişim ne zaman gelir?"},
    }


def text_scenario() -> bytes:
    return signed_request(notification([text_message(next(_ids))], []))


def new_customer_scenario() -> bytes:
    n = next(_ids)
    return signed_request(notification([text_message(n, f"49170{n:08d}")], []))


def batch_scenario() -> bytes:
    return signed_request(notification([text_message(next(_ids)) for _ in range(5)], []))


_REDELIVERY = notification([text_message(10**9)], [])


def redelivery_scenario() -> bytes:
    return signed_request(_REDELIVERY)


def status_scenario() -> bytes:
    status = {
        "id": f"wamid.{RUN}.out.{next(_ids)}",
        "status": "delivered",
        "timestamp": str(int(time.time())),
        "recipient_id": "905320000001",
    }
    return signed_request(notification([], [status]))


def bad_signature_scenario() -> bytes:
    return signed_request(_REDELIVERY, secret="wrong-secret")


SCENARIOS: list[tuple[str, Callable[[], bytes], int, int]] = [
    # name, request factory, expected status, messages per request
    ("text", text_scenario, 200, 1),
    ("text new cust", new_customer_scenario, 200, 1),
    ("batch x5", batch_scenario, 200, 5),
    ("redelivery", redelivery_scenario, 200, 0),
    ("status", status_scenario, 200, 0),
    ("bad signature", bad_signature_scenario, 401, 0),
]


async def prime(port: int) -> None:
    """Every pool customer writes once, so ``text`` measures returning customers."""
    pending = iter(range(CUSTOMERS))

    async def sender() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for n in pending:
                writer.write(signed_request(notification([text_message(n)], [])))
                if await read_response(reader) != 200:
                    raise RuntimeError("priming webhook refused")
        finally:
            writer.close()

    await asyncio.gather(*(sender() for _ in range(4)))


def mariadb_database(base_url: str) -> tuple[str, Callable[[], None]]:
    import pymysql
    from sqlalchemy.engine import make_url

    url = make_url(base_url)
    name = f"kervan_bench_wa_{RUN}"
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


async def durability(label: str, database_url: str) -> dict[str, Any]:
    """The settings that decide what a commit costs, as the server reports them."""
    from sqlalchemy import text

    from service.db import Database

    db = Database(database_url)
    try:
        async with db.connect() as conn:
            if label == "sqlite":
                return {
                    "journal_mode": await conn.scalar(text("PRAGMA journal_mode")),
                    # 1 = NORMAL: in WAL mode a commit is not fsynced (only checkpoints are);
                    # durable across a process crash, not across a power loss.
                    "synchronous": await conn.scalar(text("PRAGMA synchronous")),
                }
            rows = await conn.execute(
                text(
                    "SHOW VARIABLES WHERE Variable_name IN ('innodb_flush_log_at_trx_commit',"
                    " 'sync_binlog', 'log_bin', 'innodb_flush_method', 'innodb_doublewrite',"
                    " 'version')"
                )
            )
            return {str(r[0]): str(r[1]) for r in rows}
    finally:
        await db.dispose()


async def bare_inserts(label: str, database_url: str, args: argparse.Namespace) -> list[Any]:
    """Rows per second the database takes from Python with kervan's driver and settings."""
    from sqlalchemy import Column, Integer, MetaData, String, Table, insert

    from service.db import Database
    from service.db.tables.crm import BigId, RawBody
    from service.db.types import JSONType, UTCDateTime, utcnow

    table = Table(
        f"bench_bare_{RUN}",
        MetaData(),
        Column("id", BigId, primary_key=True, autoincrement=True),
        Column("received_at", UTCDateTime(), nullable=False),
        Column("body", RawBody, nullable=False),
        Column("body_encoding", String(8), nullable=False),
        Column("state", String(16), nullable=False),
        Column("messages", Integer, nullable=False),
        Column("statuses", Integer, nullable=False),
        Column("issues", JSONType, nullable=True),
        Column("processed_at", UTCDateTime(), nullable=True),
    )
    body = notification([text_message(10**9 + 1)], []).decode()
    db = Database(database_url, pool_size=args.connections)
    writer = asyncio.Lock() if db.dialect == "sqlite" else None
    async with db.begin() as conn:
        await conn.run_sync(table.create)

    def row() -> dict[str, Any]:
        return {
            "received_at": utcnow(),
            "body": body,
            "body_encoding": "utf-8",
            "state": "received",
            "messages": 0,
            "statuses": 0,
        }

    async def commit(rows: int) -> None:
        # An executemany, as kervan's store step: one (multi-row) INSERT, one commit.
        if writer is None:
            async with db.begin() as conn:
                await conn.execute(insert(table), [row() for _ in range(rows)])
            return
        async with writer, db.begin() as conn:
            await conn.execute(insert(table), [row() for _ in range(rows)])

    async def measure(name: str, connections: int, rows: int) -> dict[str, Any]:
        latencies: list[float] = []
        await commit(rows)  # warm the pool and the statement cache
        stop_at = time.perf_counter() + args.bare_seconds

        async def loop() -> None:
            while time.perf_counter() < stop_at:
                started = time.perf_counter()
                await commit(rows)
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(loop() for _ in range(connections)))
        elapsed = time.perf_counter() - started
        latencies.sort()
        result = {
            "database": label,
            "kind": "bare",
            "scenario": name,
            "connections": connections,
            "rows_per_transaction": rows,
            "transactions": len(latencies),
            "seconds": elapsed,
            "rows_per_second": len(latencies) * rows / elapsed,
            "p50_ms": latencies[len(latencies) // 2] * 1000,
            "p99_ms": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] * 1000,
        }
        print(
            f"{label:<9}{name:<22}{result['rows_per_second']:>10.0f}{'':>10}"
            f"{result['p50_ms']:>9.2f}{result['p99_ms']:>9.2f}",
            flush=True,
        )
        return result

    try:
        return [
            await measure("bare 1 row/txn", 1, 1),
            await measure(f"bare 1 row/txn x{args.connections}", args.connections, 1),
            await measure(f"bare {GROUP} rows/txn", 1, GROUP),
        ]
    finally:
        async with db.begin() as conn:
            await conn.run_sync(table.drop)
        await db.dispose()


async def run_server(
    label: str,
    database_url: str,
    args: argparse.Namespace,
    scenarios: list[tuple[str, Callable[[], bytes], int, int]],
    *,
    root: Path = ROOT,
    kind: str = "kervan",
) -> list[Any]:
    port = free_port()
    tmp = Path(tempfile.mkdtemp(prefix="kervan-wa-bench-"))
    async with kervan_server(
        port,
        tmp,
        database_url=database_url,
        admin_key=ADMIN_KEY,
        root=root,
        extra_env={"KERVAN_WHATSAPP_APP_SECRET": APP_SECRET},
    ):
        await prime(port)
        rows = []
        for name, make, expected, per_request in scenarios:
            result = await drive(port, make, (expected,), args.seconds, args.connections)
            result["webhooks_per_second"] = result.pop("per_second")
            result["messages_per_second"] = result["webhooks_per_second"] * per_request
            shown = name if kind == "kervan" else f"{name} ({kind})"
            rows.append({"database": label, "kind": kind, "scenario": name, **result})
            print(
                f"{label:<9}{shown:<22}{result['webhooks_per_second']:>10.0f}"
                f"{result['messages_per_second']:>10.0f}{result['p50_ms']:>9.2f}"
                f"{result['p99_ms']:>9.2f}{result['max_ms']:>9.2f}{result['errors']:>8}",
                flush=True,
            )
        return rows


def fresh_database(label: str, base_url: str | None) -> tuple[str, Callable[[], None]]:
    if label == "sqlite":
        tmp = Path(tempfile.mkdtemp(prefix="kervan-wa-sqlite-"))
        return f"sqlite+aiosqlite:///{tmp / 'kervan.db'}", lambda: None
    assert base_url is not None
    return mariadb_database(base_url)


async def run_database(label: str, args: argparse.Namespace) -> list[Any]:
    base = args.mariadb_url if label == "mariadb" else None
    url, drop = fresh_database(label, base)
    try:
        rows = await bare_inserts(label, url, args)
        wanted = [s for s in SCENARIOS if args.scenarios is None or s[0] in args.scenarios]
        rows += await run_server(label, url, args, wanted)
    finally:
        drop()
    if args.baseline_tree is not None:
        url, drop = fresh_database(label, base)
        try:
            text = [s for s in SCENARIOS if s[0] == "text"]
            rows += await run_server(label, url, args, text, root=args.baseline_tree, kind="before")
        finally:
            drop()
    return rows


def summary(rows: list[dict[str, Any]], args: argparse.Namespace) -> list[dict[str, Any]]:
    """kervan's ``text`` figures beside the bare-insert limits and the figures before."""

    def pick(database: str, kind: str, scenario: str) -> dict[str, Any] | None:
        for row in rows:
            if (row["database"], row["kind"], row["scenario"]) == (database, kind, scenario):
                return row
        return None

    print(
        f"\ntext deliveries (returning customers), {args.connections} senders, against the limits"
    )
    print(
        f"{'database':<9}{'kervan/s':>9}{'p99 ms':>8}{'bare 1/txn':>11}"
        f"{'bare x' + str(args.connections):>10}{'bare ' + str(GROUP) + '/txn':>12}{'before/s':>9}"
        f"{'/1-txn':>8}{'/xN':>7}{'/grouped':>9}{'/before':>8}"
    )
    out = []
    for database in ("sqlite", "mariadb"):
        kervan = pick(database, "kervan", "text")
        if kervan is None:
            continue
        serial = pick(database, "bare", "bare 1 row/txn")
        concurrent = pick(database, "bare", f"bare 1 row/txn x{args.connections}")
        grouped = pick(database, "bare", f"bare {GROUP} rows/txn")
        before_row = pick(database, "before", "text")
        before = (
            before_row["webhooks_per_second"]
            if before_row is not None
            else RECORDED_BEFORE[database]
        )
        rate = kervan["webhooks_per_second"]

        def limit(row: dict[str, Any] | None) -> float:
            return float(row["rows_per_second"]) if row is not None else float("nan")

        line = {
            "database": database,
            "kervan_per_second": rate,
            "kervan_p99_ms": kervan["p99_ms"],
            "bare_1_row_per_txn": limit(serial),
            "bare_1_row_per_txn_concurrent": limit(concurrent),
            "bare_grouped": limit(grouped),
            "before_per_second": before,
            "before_measured_in_this_run": before_row is not None,
            "ratio_to_bare_1_row_per_txn": rate / limit(serial),
            "ratio_to_bare_concurrent": rate / limit(concurrent),
            "ratio_to_bare_grouped": rate / limit(grouped),
            "ratio_to_before": rate / before,
        }
        out.append(line)
        print(
            f"{database:<9}{rate:>9.0f}{kervan['p99_ms']:>8.1f}{limit(serial):>11.0f}"
            f"{limit(concurrent):>10.0f}{limit(grouped):>12.0f}"
            f"{before:>8.0f}{'' if before_row else '*'}"
            f"{line['ratio_to_bare_1_row_per_txn']:>8.2f}{line['ratio_to_bare_concurrent']:>7.2f}"
            f"{line['ratio_to_bare_grouped']:>9.3f}{line['ratio_to_before']:>8.2f}",
            flush=True,
        )
    if any(not line["before_measured_in_this_run"] for line in out):
        print("* recorded before group commit (16 connections); --baseline-tree measures it here")
    return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    load_before = list(os.getloadavg())
    databases = ["sqlite"] + (["mariadb"] if args.mariadb_url else [])
    settings = {label: await durability_of(label, args) for label in databases}
    for label, values in settings.items():
        print(f"{label} durability: " + ", ".join(f"{k}={v}" for k, v in values.items()))
    print(
        f"{'database':<9}{'scenario':<22}{'hooks/s':>10}{'msgs/s':>10}{'p50 ms':>9}"
        f"{'p99 ms':>9}{'max ms':>9}{'errors':>8}"
    )
    print(f"{'':<31}{'(bare: rows/s)':>10}")
    rows: list[Any] = []
    for label in databases:
        rows += await run_database(label, args)
    return {
        "bench": "webhook",
        "server": "kervan serve: granian, 1 worker, uvloop, memory backends, embedded queue worker",
        "client": f"raw asyncio keep-alive HTTP/1.1, {args.connections} connections",
        "seconds_per_scenario": args.seconds,
        "customers": CUSTOMERS,
        "durability": settings,
        "rows": rows,
        "summary": summary(rows, args),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            # The machine is shared; the load before the run says how much to trust the figures.
            "load_average_before": load_before,
            "load_average_after": list(os.getloadavg()),
        },
    }


async def durability_of(label: str, args: argparse.Namespace) -> dict[str, Any]:
    url, drop = fresh_database(label, args.mariadb_url if label == "mariadb" else None)
    try:
        return await durability(label, url)
    finally:
        drop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--bare-seconds", type=float, default=3.0)
    parser.add_argument("--mariadb-url", default="mariadb+aiomysql://root@127.0.0.1:3306/")
    parser.add_argument(
        "--baseline-tree", type=Path, help="source tree of the code before, run beside"
    )
    parser.add_argument(
        "--scenarios",
        type=lambda value: [v.strip() for v in value.split(",") if v.strip()],
        help="comma-separated scenario names (default: all)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/webhook.json")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(
        asyncio.wait_for(run(args), timeout=600 + 14 * args.seconds + 6 * args.bare_seconds)
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
