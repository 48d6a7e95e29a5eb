"""Degrade mode under a prefetch flood: webhooks keep their p99 while prefetches are shed.

One ``kervan serve`` (granian, one worker, SQLite, embedded backends) gets two loads at once
from the bench's load generator (``bench/loadgen.py``): a steady stream of signed WhatsApp
webhooks (``--webhook-connections`` closed-loop senders, the important work) and an open-loop
flood of speculative prefetches (``Sec-Purpose: prefetch``, ``--flood-rate`` requests/s over
``--flood-connections``, sent on schedule like browsers' prefetches) of a page that costs the
server real work (the OpenAPI document). The same loads
run three times, each on a fresh server: webhooks alone (the reference p99), the flood with
degrade mode off, and with degrade mode on ``auto`` (entered by the request p99 threshold). The
figure that matters is the webhooks' p99 with the flood, off against auto, beside the reference.

Prints a table and writes bench/results/degrade.json.

    .venv/bin/python bench/load_degrade.py [--seconds 8] [--flood-connections 64]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.bench_webhook import APP_SECRET, prime, text_scenario  # noqa: E402
from bench.loadgen import drive, free_port, kervan_server, read_response  # noqa: E402

ADMIN_KEY = "bench-admin-key"
FLOOD = b"GET /openapi.json HTTP/1.1\r\nHost: 127.0.0.1\r\nSec-Purpose: prefetch\r\n\r\n"


async def paced_flood(port: int, rate: float, seconds: float, connections: int) -> dict[str, Any]:
    """An open-loop flood: ``rate`` requests/s over ``connections``, each request sent on
    schedule whatever the answers take (as browsers' prefetches arrive), so a cheap refusal
    does not make the flood itself heavier."""
    statuses: dict[int, int] = {}
    late = 0
    interval = connections / rate

    async def one(offset: float) -> None:
        nonlocal late
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        started = time.perf_counter()
        due = started + offset
        try:
            while due < started + seconds:
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    late += 1
                writer.write(FLOOD)
                status = await read_response(reader)
                statuses[status] = statuses.get(status, 0) + 1
                due += interval
        finally:
            writer.close()

    await asyncio.gather(*(one(n * interval / connections) for n in range(connections)))
    done = sum(statuses.values())
    return {
        "offered_per_second": rate,
        "answered_per_second": done / seconds,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "late_sends": late,
    }


async def run_case(name: str, mode: str, flood: bool, args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    tmp = Path(tempfile.mkdtemp(prefix="kervan-degrade-"))
    env = {
        "KERVAN_WHATSAPP_APP_SECRET": APP_SECRET,
        "KERVAN_DEGRADE_MODE": mode,
        "KERVAN_DEGRADE_P99_MS": str(args.p99_ms),
        "KERVAN_DEGRADE_ENTER_SECONDS": "0.5",
        "KERVAN_LOG_LEVEL": "WARNING",
    }
    async with kervan_server(
        port,
        tmp,
        database_url=f"sqlite+aiosqlite:///{tmp / 'kervan.db'}",
        admin_key=ADMIN_KEY,
        root=ROOT,
        extra_env=env,
    ):
        await prime(port)
        webhooks = drive(port, text_scenario, (200,), args.seconds, args.webhook_connections)
        if flood:
            flooding = paced_flood(
                port, args.flood_rate, args.seconds + 0.5, args.flood_connections
            )
            hooks, prefetch = await asyncio.gather(webhooks, flooding)
        else:
            hooks, prefetch = await webhooks, None
    row: dict[str, Any] = {
        "case": name,
        "degrade_mode": mode,
        "webhooks_per_second": round(hooks["per_second"], 1),
        "webhook_p50_ms": round(hooks["p50_ms"], 2),
        "webhook_p99_ms": round(hooks["p99_ms"], 2),
        "webhook_errors": hooks["errors"],
    }
    if prefetch is not None:
        row["prefetch"] = prefetch
    return row


async def run(args: argparse.Namespace) -> dict[str, Any]:
    rows = [
        await run_case("webhooks alone", "off", False, args),
        await run_case("flood, degrade off", "off", True, args),
        await run_case("flood, degrade auto", "auto", True, args),
    ]
    return {
        "bench": "degrade",
        "server": "kervan serve: granian, 1 worker, uvloop, SQLite, memory backends",
        "flood": "GET /openapi.json with Sec-Purpose: prefetch",
        "seconds": args.seconds,
        "webhook_connections": args.webhook_connections,
        "flood_connections": args.flood_connections,
        "flood_rate": args.flood_rate,
        "p99_threshold_ms": args.p99_ms,
        "rows": rows,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--webhook-connections", type=int, default=4)
    parser.add_argument("--flood-connections", type=int, default=64)
    parser.add_argument("--flood-rate", type=float, default=1500.0)
    parser.add_argument("--p99-ms", type=float, default=200.0)
    args = parser.parse_args()
    started = time.monotonic()
    result = asyncio.run(run(args))
    print(f"{'case':<22}{'hooks/s':>9}{'p50 ms':>9}{'p99 ms':>9}  prefetch answers")
    for row in result["rows"]:
        prefetch = row.get("prefetch")
        shown = "" if prefetch is None else f"{prefetch['statuses']} late {prefetch['late_sends']}"
        print(
            f"{row['case']:<22}{row['webhooks_per_second']:>9.0f}{row['webhook_p50_ms']:>9.2f}"
            f"{row['webhook_p99_ms']:>9.2f}  {shown}"
        )
    print(f"({time.monotonic() - started:.0f} s)")
    out = ROOT / "bench" / "results" / "degrade.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")


if __name__ == "__main__":
    main()
