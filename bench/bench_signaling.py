"""Call signaling round trip through ``/ws/support``: relay + ack, p50/p99, one process and two.

Real ``kervan serve`` processes in scaled mode (the machine's Redis, a namespace of their own, a
throw-away MariaDB database), driven over raw ``websockets`` connections. ``--pairs`` customers
and as many admins (accounts and sessions made as ``bench_support`` makes them) are put in a
room each, and every customer starts a call. Then each pair plays ping-pong for ``--seconds``:
the customer sends an ``rtc:ice:candidate`` (its own ``seq``), the admin's client delivers it,
acknowledges it (``rtc:ack``) and answers with one of its own, which the customer delivers and
acknowledges. A round trip is from the customer's send to its delivery of the answer, so it
holds two relays through the signaling store and the acknowledgements of both clients. Cases:
both clients on one process, and the customer on one process with the admin on the other (every
message crosses processes through Redis).

Prints a table and writes bench/results/signaling.json.

    .venv/bin/python bench/bench_signaling.py [--seconds 10] [--pairs 20]
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_support import (
    RUN,
    admin_sessions,
    drop_namespace,
    kervan_processes,
    mariadb_database,
    open_socket,
    prepare_database,
)

ROOT = Path(__file__).resolve().parent.parent
CANDIDATE = {"candidate": "candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host", "sdpMid": "0"}


class Side:
    """One client's end of one call: its own numbering, in-order delivery, acknowledgements."""

    def __init__(self, socket: Any, call: str) -> None:
        self.socket = socket
        self.call = call
        self.seq = 0
        self.delivered = 0

    async def send(self, kind: str, **fields: Any) -> None:
        self.seq += 1
        frame = {"type": kind, "call": self.call, "seq": self.seq, **fields}
        await self.socket.send(orjson.dumps(frame), text=True)

    async def deliver(self, kind: str) -> dict[str, Any]:
        """The next relayed frame of ``kind`` (in order), acknowledged."""
        while True:
            data: dict[str, Any] = orjson.loads(await self.socket.recv())
            if data.get("call") != self.call or "seq" not in data or data["type"] == "rtc:ack":
                if data["type"] == "ping":
                    await self.socket.send(b'{"type":"pong"}', text=True)
                elif data["type"] == "error":
                    raise RuntimeError(f"error frame: {data}")
                continue
            if data["seq"] != self.delivered + 1:
                continue  # a resend of one delivered already
            self.delivered = data["seq"]
            ack = {"type": "rtc:ack", "call": self.call, "ack": self.delivered}
            await self.socket.send(orjson.dumps(ack), text=True)
            if data["type"] == kind:
                return data


async def hello(url: str, message: dict[str, Any]) -> Any:
    socket = await open_socket(url)
    await socket.send(orjson.dumps(message), text=True)
    while orjson.loads(await socket.recv())["type"] != "welcome":
        pass
    return socket


async def expect(socket: Any, kind: str) -> dict[str, Any]:
    while True:
        data: dict[str, Any] = orjson.loads(await socket.recv())
        if data["type"] == kind:
            return data
        if data["type"] == "ping":
            await socket.send(b'{"type":"pong"}', text=True)


async def pair(customer_url: str, admin_url: str, token: str, n: int) -> tuple[Side, Side]:
    customer = await hello(customer_url, {"type": "hello", "role": "customer", "name": f"c{n}"})
    await customer.send(b'{"type":"queue:join"}', text=True)
    admin = await hello(admin_url, {"type": "hello", "role": "admin", "token": token})
    room = (await expect(customer, "room:joined"))["room"]
    await expect(admin, "room:joined")
    call = f"bench-{RUN}-{n:04d}"
    caller, callee = Side(customer, call), Side(admin, call)
    await caller.send("call:start", room=room)
    await callee.deliver("call:start")
    await callee.send("call:accept")
    await caller.deliver("call:accept")
    return caller, callee


async def ping_pong(caller: Side, callee: Side, until: float, samples: list[float]) -> None:
    while time.monotonic() < until:
        started = time.perf_counter()
        await caller.send("rtc:ice:candidate", candidate=CANDIDATE)
        await callee.deliver("rtc:ice:candidate")
        await callee.send("rtc:ice:candidate", candidate=CANDIDATE)
        await caller.deliver("rtc:ice:candidate")
        samples.append(time.perf_counter() - started)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run_case(
    name: str, ports: list[int], tokens: list[str], pairs: int, seconds: float
) -> dict[str, Any]:
    customer_url = f"ws://127.0.0.1:{ports[0]}/ws/support"
    admin_url = f"ws://127.0.0.1:{ports[-1]}/ws/support"
    sides = [await pair(customer_url, admin_url, tokens[n], n) for n in range(pairs)]
    warm: list[float] = []
    await asyncio.gather(*(ping_pong(c, a, time.monotonic() + 1.0, warm) for c, a in sides))
    samples: list[float] = []
    started = time.monotonic()
    await asyncio.gather(*(ping_pong(c, a, started + seconds, samples) for c, a in sides))
    elapsed = time.monotonic() - started
    for caller, callee in sides:
        await caller.send("call:end")
        await caller.socket.close()
        await callee.socket.close()
    return {
        "case": name,
        "pairs": pairs,
        "round_trips": len(samples),
        "round_trips_per_second": round(len(samples) / elapsed, 1),
        "p50_ms": round(percentile(samples, 0.50) * 1000, 2),
        "p99_ms": round(percentile(samples, 0.99) * 1000, 2),
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    redis_url = os.environ.get("KERVAN_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    base = os.environ.get("KERVAN_BENCH_MARIADB_URL", "mariadb+aiomysql://root@127.0.0.1:3306/test")
    database_url, drop_database = mariadb_database(base)
    namespace = f"kb-sig-{RUN}"
    rows = []
    try:
        admins = await prepare_database(database_url, args.pairs * 2)
        tokens = await admin_sessions(redis_url, namespace, admins)
        with tempfile.TemporaryDirectory(prefix="kervan-bench-sig-") as tmp:
            async with kervan_processes(
                2, Path(tmp), database_url=database_url, redis_url=redis_url, namespace=namespace
            ) as servers:
                ports = [port for port, _ in servers]
                rows.append(
                    await run_case(
                        "one process", ports[:1], tokens[: args.pairs], args.pairs, args.seconds
                    )
                )
                rows.append(
                    await run_case(
                        "two processes", ports, tokens[args.pairs :], args.pairs, args.seconds
                    )
                )
    finally:
        await drop_namespace(redis_url, namespace)
        drop_database()
    return {
        "bench": "signaling",
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "seconds": args.seconds,
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--pairs", type=int, default=20)
    args = parser.parse_args()
    result = asyncio.run(main_async(args))
    print(f"{'case':<15} {'pairs':>5} {'round trips/s':>14} {'p50 ms':>8} {'p99 ms':>8}")
    for row in result["rows"]:
        print(
            f"{row['case']:<15} {row['pairs']:>5} {row['round_trips_per_second']:>14,.1f} "
            f"{row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f}"
        )
    out = ROOT / "bench" / "results" / "signaling.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")


if __name__ == "__main__":
    main()
