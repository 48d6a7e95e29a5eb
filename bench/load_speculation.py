"""Load test of ``GET /perf/speculation/dynamic`` with a cached answer, one granian worker.

Starts ``kervan serve`` (one worker, uvloop, loopback only, a throw-away SQLite database),
imports a 2,000-page / 10,000-edge flow graph for ``en-d``, warms the cache, then drives the
endpoint with a small keep-alive HTTP/1.1 client (raw asyncio streams, so the client costs far
less CPU than the server) for a fixed time per scenario:

- ``rules 200``: full answers (the rules JSON, about 4 kB);
- ``rules 304``: revalidation with ``If-None-Match`` (what browsers mostly send);
- ``health``: the trivial ``/health`` endpoint of the same server, as the floor for comparison.

The global per-IP rate limit is switched off (one loopback client would be throttled at once).
Prints a table and writes bench/results/speculation_load.json.

    .venv/bin/python bench/load_speculation.py [--seconds 5] [--connections 32]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.loadgen import drive, free_port, kervan_server  # noqa: E402

ADMIN_KEY = "bench-admin-key"


def synthetic_edges(seed: int, pages: int = 2000, edges: int = 10_000) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    paths = ["/", "/en/projects"] + [f"/en/p/{i}" for i in range(pages - 2)]
    rows: dict[tuple[str, str], int] = {}
    while len(rows) < edges:
        a = paths[min(int(rng.paretovariate(1.1)) - 1, pages - 1)]
        b = paths[rng.randrange(pages)]
        if a != b:
            rows[(a, b)] = rng.randint(1, 500)
    return [{"from": a, "to": b, "count": n} for (a, b), n in rows.items()]


async def request_once(
    port: int, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        head = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if body:
            head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        await writer.drain()
        raw = await reader.read(-1)
    finally:
        writer.close()
    header_blob, _, content = raw.partition(b"\r\n\r\n")
    lines = header_blob.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    parsed = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    return status, parsed, content


def get_request(path: str, extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n".encode()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    import orjson

    port = free_port()
    tmp = Path(tempfile.mkdtemp(prefix="kervan-load-"))
    async with kervan_server(
        port,
        tmp,
        database_url=f"sqlite+aiosqlite:///{tmp / 'kervan.db'}",
        admin_key=ADMIN_KEY,
        root=ROOT,
    ):
        body = orjson.dumps({"seg": "en-d", "replace": True, "edges": synthetic_edges(1)})
        status, _, text = await request_once(
            port, "POST", "/flows/edges", body, {"X-API-Key": ADMIN_KEY}
        )
        if status != 200:
            raise RuntimeError(f"edge import failed: {status} {text[:200]!r}")
        deadline = time.monotonic() + 30
        while True:  # the import triggers a background refresh; wait for its answer
            status, headers, rules = await request_once(
                port, "GET", "/perf/speculation/dynamic?seg=en-d"
            )
            if status == 200 and orjson.loads(rules)["prerender"]:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"no rules: {status} {rules[:200]!r}")
            await asyncio.sleep(0.2)
        etag = headers["etag"]
        scenarios = {
            "rules 200": get_request("/perf/speculation/dynamic?seg=en-d"),
            "rules 304": get_request(
                "/perf/speculation/dynamic?seg=en-d", f"If-None-Match: {etag}\r\n"
            ),
            "health": get_request("/health"),
        }
        rows = []
        for name, request in scenarios.items():
            result = await drive(
                port,
                itertools.repeat(request).__next__,
                (200, 304),
                args.seconds,
                args.connections,
                warm_connections=4,
            )
            result["requests_per_second"] = result.pop("per_second")
            result.pop("error_statuses")
            rows.append({"scenario": name, **result})
        return {
            "bench": "speculation_load",
            "server": "kervan serve: granian, 1 worker, uvloop, SQLite, memory backends",
            "client": f"raw asyncio keep-alive HTTP/1.1, {args.connections} connections",
            "rules_bytes": len(rules),
            "graph": {"pages": 2000, "edges": 10_000},
            "seconds_per_scenario": args.seconds,
            "rows": rows,
            "machine": {
                "cpus": os.cpu_count(),
                "load_average_1min": os.getloadavg()[0],
                "python": platform.python_version(),
            },
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/speculation_load.json")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(asyncio.wait_for(run(args), timeout=120 + 4 * args.seconds))
    print(
        f"{'scenario':<12}{'req/s':>10}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}"
        f"{'max ms':>9}{'errors':>8}"
    )
    for row in result["rows"]:
        print(
            f"{row['scenario']:<12}{row['requests_per_second']:>10.0f}{row['p50_ms']:>9.2f}"
            f"{row['p90_ms']:>9.2f}{row['p99_ms']:>9.2f}{row['max_ms']:>9.2f}{row['errors']:>8}"
        )
    import orjson

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
