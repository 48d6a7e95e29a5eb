"""Signed WhatsApp webhooks processed per second, with latency percentiles, one granian worker.

Starts ``kervan serve`` (one worker, uvloop, loopback only) on SQLite (the embedded default, a
throw-away file) and then on MariaDB (a throw-away database), each with the embedded queue
worker running as in production, and drives ``POST /webhooks/wa`` with correctly signed Cloud
API payloads over keep-alive HTTP/1.1 connections (raw asyncio streams, so the client costs far
less CPU than the server) for a fixed time per scenario:

- ``text``: one new text message per delivery from one of 200 known customers (signature
  check, raw event row, contact and open conversation lookup, message row, conversation
  counters, live update) - the common case;
- ``text new cust``: the same from a customer never seen before (contact and conversation are
  created too);
- ``batch x5``: five new messages from five known customers in one delivery;
- ``redelivery``: the same delivery again and again (WhatsApp retries): logged, deduplicated;
- ``status``: a ``delivered`` status for an id the CRM does not know yet (parked);
- ``bad signature``: refused with 401 before anything is parsed or stored (the floor).

A request counts only if answered 200 (401 for the last scenario).
Prints a table and writes bench/results/webhook.json.

    .venv/bin/python bench/bench_webhook.py [--seconds 4] [--connections 16] [--mariadb-url URL]
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


async def run_database(label: str, database_url: str, args: argparse.Namespace) -> list[Any]:
    port = free_port()
    tmp = Path(tempfile.mkdtemp(prefix="kervan-wa-bench-"))
    async with kervan_server(
        port,
        tmp,
        database_url=database_url,
        admin_key=ADMIN_KEY,
        root=ROOT,
        extra_env={"KERVAN_WHATSAPP_APP_SECRET": APP_SECRET},
    ):
        await prime(port)
        rows = []
        for name, make, expected, per_request in SCENARIOS:
            result = await drive(port, make, (expected,), args.seconds, args.connections)
            result["webhooks_per_second"] = result.pop("per_second")
            result["messages_per_second"] = result["webhooks_per_second"] * per_request
            rows.append({"database": label, "scenario": name, **result})
            print(
                f"{label:<9}{name:<15}{result['webhooks_per_second']:>10.0f}"
                f"{result['messages_per_second']:>10.0f}{result['p50_ms']:>9.2f}"
                f"{result['p99_ms']:>9.2f}{result['max_ms']:>9.2f}{result['errors']:>8}",
                flush=True,
            )
        return rows


async def run(args: argparse.Namespace) -> dict[str, Any]:
    load_before = list(os.getloadavg())
    print(
        f"{'database':<9}{'scenario':<15}{'hooks/s':>10}{'msgs/s':>10}{'p50 ms':>9}"
        f"{'p99 ms':>9}{'max ms':>9}{'errors':>8}"
    )
    tmp = Path(tempfile.mkdtemp(prefix="kervan-wa-sqlite-"))
    rows = await run_database("sqlite", f"sqlite+aiosqlite:///{tmp / 'kervan.db'}", args)
    if args.mariadb_url:
        url, drop = mariadb_database(args.mariadb_url)
        try:
            rows += await run_database("mariadb", url, args)
        finally:
            drop()
    return {
        "bench": "webhook",
        "server": "kervan serve: granian, 1 worker, uvloop, memory backends, embedded queue worker",
        "client": f"raw asyncio keep-alive HTTP/1.1, {args.connections} connections",
        "seconds_per_scenario": args.seconds,
        "customers": CUSTOMERS,
        "rows": rows,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            # The machine is shared; the load before the run says how much to trust the figures.
            "load_average_before": load_before,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--mariadb-url", default="mariadb+aiomysql://root@127.0.0.1:3306/")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/webhook.json")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(asyncio.wait_for(run(args), timeout=300 + 12 * args.seconds))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
