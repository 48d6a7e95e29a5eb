"""The request path, side by side: kervan against bare ASGI, plain Starlette and Node/Fastify.

One server process per contender, all started once (loopback only), then the same load on each
in turn: ``wrk -t1 -c32 -d<seconds>s --latency`` (or, when wrk is missing, the asyncio client of
``bench/loadgen.py``; the output says which), ``--rounds`` rounds whose order rotates, so a noisy
machine hits every contender alike. Each row keeps its median round by req/s.

Rows:

- ``bare ASGI``: ``bench/baselines/bare_asgi.py`` on granian, fixed bytes (the floor);
- ``bare RSGI``: ``bench/baselines/bare_rsgi.py``, the same under granian's RSGI interface;
- ``plain Starlette``: ``bench/baselines/plain_starlette.py``, one route, no middleware;
- ``Fastify cached`` / ``Fastify simulate``: the original design's
  ``GET /perf/speculation/dynamic`` on Node (``bench/baselines/fastify``, ``npm ci`` run here if
  ``node_modules`` is missing), a prebuilt JSON answer, or the original Monte-Carlo simulation
  per request over the same 2,000-page / 10,000-edge graph kervan is given;
- ``kervan /health`` and ``kervan rules`` (``/perf/speculation/dynamic?seg=en-d``, cached
  answer), each at log level INFO and at WARNING: two real ``kervan serve`` processes (granian,
  one worker, uvloop, SQLite in a temp dir, embedded backends, seeded flows), every protection
  on: ``KERVAN_ENV=production`` (security headers with HSTS), request id, CORS with the
  allowed origin sent by the client (``Origin: https://example.com``), the per-IP rate limit
  (``public.ip``, raised so the load is not refused; ``/health`` is exempt by design), metrics,
  and the JSON access log, written to a file in the temp dir (its line count is shown);
- ``kervan ... RSGI``: the same two servers again with ``KERVAN_SERVER_INTERFACE=rsgi`` (the
  fast routes answered from granian's RSGI protocol object, ``service/rsgi/``).

For kervan the status codes are also counted server-side from ``/metrics``, so the 2xx ratio
is exact (wrk only counts "non-2xx or 3xx"). Server CPU per request (the server's process tree,
from /proc) is shown beside req/s: it moves less than req/s when the machine is shared.

Goals (issue 13): kervan rules / Fastify cached >= 1.0; kervan /health / plain Starlette >= 0.8
(judged for either interface).
Prints a table and writes bench/results/http.json.

    .venv/bin/python bench/bench_http.py [--seconds 5] [--rounds 3] [--connections 32]
    .venv/bin/python -m bench http
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.load_speculation import request_once, synthetic_edges  # noqa: E402
from bench.loadgen import (  # noqa: E402
    drive,
    free_port,
    kervan_server,
    process_server,
    run_wrk,
    wrk_path,
)

ADMIN_KEY = "bench-admin-key"
ORIGIN = "https://example.com"
SEG = "en-d"
RULES = f"/perf/speculation/dynamic?seg={SEG}"
FASTIFY_DIR = ROOT / "bench/baselines/fastify"
#: (server key suffix, row label suffix, KERVAN_SERVER_INTERFACE)
INTERFACES = (("", "", "asgi"), ("_rsgi", " RSGI", "rsgi"))
#: Far above what one loopback client can send, so the limiter checks every request and
#: refuses none.
RATELIMIT_POLICIES = "public.ip=1000000/second burst 1000000"
GRANIAN_FLAGS = ["--loop", "uvloop", "--workers", "1"]
GRANIAN_FLAGS += ["--runtime-threads", "1", "--backlog", "1024"]


@dataclass
class Server:
    key: str
    description: str
    port: int = 0
    pid: int | None = None
    skipped: str | None = None
    log: Path | None = None


@dataclass
class Row:
    key: str
    label: str
    server: str
    path: str
    rounds: list[dict[str, Any]] = field(default_factory=list)
    probe: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- processes and CPU time


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its live descendants (granian's worker)."""
    tree = _children()
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    stack = [pid]
    while stack:
        current = stack.pop()
        stack.extend(tree.get(current, ()))
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


# ---------------------------------------------------------------- kervan helpers


async def seed_flows(port: int, edges: list[dict[str, Any]]) -> bytes:
    """Import the flow graph for ``en-d`` and wait for its (non-empty) cached rules."""
    import orjson

    body = orjson.dumps({"seg": SEG, "replace": True, "edges": edges})
    status, _, text = await request_once(
        port, "POST", "/flows/edges", body, {"X-API-Key": ADMIN_KEY}
    )
    if status != 200:
        raise RuntimeError(f"edge import failed: {status} {text[:200]!r}")
    deadline = time.monotonic() + 30
    while True:
        status, _, rules = await request_once(port, "GET", RULES)
        if status == 200 and orjson.loads(rules)["prerender"]:
            return rules
        if time.monotonic() > deadline:
            raise RuntimeError(f"no rules: {status} {rules[:200]!r}")
        await asyncio.sleep(0.2)


async def status_counts(port: int) -> dict[tuple[str, str], float]:
    """``kervan_http_requests_total`` by (route, status), read from ``/metrics``."""
    from prometheus_client.parser import text_string_to_metric_families

    status, _, text = await request_once(port, "GET", "/metrics")
    if status != 200:
        raise RuntimeError(f"/metrics answered {status}")
    counts: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text.decode()):
        if family.name != "kervan_http_requests":
            continue
        for sample in family.samples:
            if sample.name.endswith("_total"):
                key = (sample.labels["route"], sample.labels["status"])
                counts[key] = counts.get(key, 0.0) + sample.value
    return counts


def kervan_env(level: str) -> dict[str, str]:
    return {
        "KERVAN_ENV": "production",
        "KERVAN_COOKIE_SECRET": secrets.token_urlsafe(48),
        "KERVAN_PUBLIC_ORIGIN": ORIGIN,
        "KERVAN_ALLOWED_ORIGINS": ORIGIN,
        "KERVAN_RATELIMIT_DEFAULT_POLICY": "public.ip",
        "KERVAN_RATELIMIT_POLICIES": RATELIMIT_POLICIES,
        "KERVAN_LOG_LEVEL": level,
        "KERVAN_LOG_FORMAT": "json",
    }


# ---------------------------------------------------------------- Node / Fastify


def fastify_pinned() -> str:
    return str(json.loads((FASTIFY_DIR / "package.json").read_text())["dependencies"]["fastify"])


def fastify_ready() -> str | None:
    """None when node and the pinned Fastify are there (``npm ci`` run if needed); else why not."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        return "node/npm not installed"
    installed = FASTIFY_DIR / "node_modules/fastify/package.json"
    pinned = fastify_pinned()
    if not installed.exists() or json.loads(installed.read_text())["version"] != pinned:
        print(f"npm ci in {FASTIFY_DIR.relative_to(ROOT)} (fastify {pinned}) ...", flush=True)
        try:
            done = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund"],
                cwd=FASTIFY_DIR,
                capture_output=True,
                text=True,
                timeout=300,
            )
        except subprocess.TimeoutExpired:
            return "npm ci timed out"
        if done.returncode != 0:
            return f"npm ci failed: {(done.stderr or done.stdout).strip()[-300:]}"
    return None


# ---------------------------------------------------------------- load


async def probe(port: int, path: str) -> dict[str, Any]:
    """One request with the bench's headers: status, body size and the protections seen."""
    status, headers, body = await request_once(port, "GET", path, headers={"Origin": ORIGIN})
    seen = {
        "security headers": "x-content-type-options" in headers
        and "content-security-policy" in headers,
        "hsts": "strict-transport-security" in headers,
        "request id": "x-request-id" in headers,
        "cors": headers.get("access-control-allow-origin") == ORIGIN,
        "rate limit": "ratelimit" in headers,
    }
    return {
        "status": status,
        "body_bytes": len(body),
        "content_type": headers.get("content-type"),
        "protections": [name for name, on in seen.items() if on],
    }


async def load(
    client: str, port: int, path: str, seconds: float, connections: int
) -> dict[str, Any]:
    if client == "wrk":
        result = await run_wrk(
            f"http://127.0.0.1:{port}{path}",
            seconds,
            connections=connections,
            headers={"Origin": ORIGIN},
        )
        result["non_2xx"] = result.pop("non_2xx_3xx")
        result["timeouts"] = result["socket_errors"]["timeout"]
        return result
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: {ORIGIN}\r\n\r\n".encode()
    result = await drive(
        port, itertools.repeat(request).__next__, range(200, 300), seconds, connections
    )
    result["non_2xx"] = result.pop("errors")
    result["timeouts"] = 0
    return result


async def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    client = "wrk" if wrk_path() is not None else "loadgen"
    tmp = Path(tempfile.mkdtemp(prefix="kervan-http-"))
    servers: dict[str, Server] = {}
    edges = synthetic_edges(1)
    python_env = {**os.environ, "PYTHONPATH": str(ROOT)}
    granian = [sys.executable, "-m", "granian", *GRANIAN_FLAGS, "--host", "127.0.0.1"]
    load_avg_start = os.getloadavg()[0]
    try:
        async with AsyncExitStack() as stack:

            async def start(server: Server, context: Any) -> None:
                server.pid = (await stack.enter_async_context(context)).pid

            starts = []
            # --- the baselines on granian
            for key, interface, target, what in (
                ("bare", "asgi", "bench.baselines.bare_asgi:app", "bare ASGI app, fixed bytes"),
                ("bare_rsgi", "rsgi", "bench.baselines.bare_rsgi:app", "bare RSGI app"),
                ("starlette", "asgi", "bench.baselines.plain_starlette:app", "Starlette"),
            ):
                server = servers[key] = Server(key, f"granian 1 worker uvloop: {what}")
                server.port, server.log = free_port(), tmp / f"{key}.log"
                argv = [*granian, "--interface", interface, "--port", str(server.port), target]
                starts.append(
                    start(
                        server,
                        process_server(
                            argv, server.port, cwd=ROOT, env=python_env, log_path=server.log
                        ),
                    )
                )
            # --- Node / Fastify, the same graph as kervan's
            why_not = fastify_ready()
            flows_file = tmp / "flows.json"
            flows_file.write_text(json.dumps({SEG: edges}))
            node_env = {**os.environ, "FLOWS_FILE": str(flows_file), "PUBLIC_ORIGIN": ORIGIN}
            for mode in ("cached", "simulate"):
                key = f"fastify_{mode}"
                server = servers[key] = Server(key, f"node, fastify {fastify_pinned()}, {mode}")
                if why_not is not None:
                    server.skipped = why_not
                    continue
                server.port, server.log = free_port(), tmp / f"{key}.log"
                argv = [
                    shutil.which("node") or "node",
                    "server.js",
                    "--port",
                    str(server.port),
                    "--mode",
                    mode,
                ]
                starts.append(
                    start(
                        server,
                        process_server(
                            argv, server.port, cwd=FASTIFY_DIR, env=node_env, log_path=server.log
                        ),
                    )
                )
            # --- kervan at INFO and at WARNING, under each interface
            kervan_starts = []
            for (suffix, _, interface), level in itertools.product(INTERFACES, ("INFO", "WARNING")):
                key = f"kervan{suffix}_{level.lower()}"
                workdir = tmp / key
                workdir.mkdir()
                server = servers[key] = Server(
                    key, f"kervan serve ({interface}), log level {level}, every protection on"
                )
                server.port, server.log = free_port(), workdir / "server.log"
                kervan_starts.append(
                    start(
                        server,
                        kervan_server(
                            server.port,
                            workdir,
                            database_url=f"sqlite+aiosqlite:///{workdir / 'kervan.db'}",
                            admin_key=ADMIN_KEY,
                            root=ROOT,
                            extra_env={
                                **kervan_env(level),
                                "KERVAN_SERVER_INTERFACE": interface,
                            },
                            log_path=server.log,
                        ),
                    )
                )
            # The baselines all at once, the kervan servers one after another (four starting
            # together on a small, shared machine may not be ready in time); every start is
            # awaited to its end (and so registered for the shutdown) before the first failure
            # is raised.
            failures = [
                e for e in await asyncio.gather(*starts, return_exceptions=True) if e is not None
            ]
            for kervan_start in kervan_starts:
                try:
                    await kervan_start
                except Exception as exc:
                    failures.append(exc)
            if failures:
                raise failures[0]
            await asyncio.gather(
                *(seed_flows(s.port, edges) for k, s in servers.items() if k.startswith("kervan"))
            )
            print(f"servers up in {time.monotonic() - started:.0f}s", flush=True)

            rows = [
                Row("bare", "bare ASGI (granian)", "bare", "/health"),
                Row("bare_rsgi", "bare RSGI (granian)", "bare_rsgi", "/health"),
                Row("starlette", "plain Starlette", "starlette", "/health"),
                Row("fastify_cached", "Fastify rules, cached", "fastify_cached", RULES),
                Row("fastify_simulate", "Fastify rules, simulate", "fastify_simulate", RULES),
            ]
            for (suffix, label, _), level in itertools.product(INTERFACES, ("info", "warning")):
                name = f"{label} {level.upper()}"
                server_key = f"kervan{suffix}_{level}"
                rows.append(
                    Row(f"{server_key}_health", f"kervan /health{name}", server_key, "/health")
                )
                rows.append(Row(f"{server_key}_rules", f"kervan rules{name}", server_key, RULES))
            live = [r for r in rows if servers[r.server].skipped is None]

            def all_cpu() -> float:
                return sum(tree_cpu_seconds(s.pid) for s in servers.values() if s.pid)

            for row in live:
                row.probe = await probe(servers[row.server].port, row.path)
                if row.probe["status"] != 200:
                    raise RuntimeError(f"{row.label}: probe answered {row.probe['status']}")
            for row in live:  # warm-up: one short run each, not kept
                await load(client, servers[row.server].port, row.path, 1, args.connections)
            for n in range(args.rounds):
                order = live[n % len(live) :] + live[: n % len(live)]
                for row in order:
                    server = servers[row.server]
                    kervan = row.server.startswith("kervan")
                    before = await status_counts(server.port) if kervan else None
                    assert server.pid is not None
                    cpu, cpu_all = tree_cpu_seconds(server.pid), all_cpu()
                    result = await load(
                        client, server.port, row.path, args.seconds, args.connections
                    )
                    cpu = tree_cpu_seconds(server.pid) - cpu
                    # The other contenders are idle meanwhile; what they burn is noise here.
                    result["other_servers_cpu_seconds"] = all_cpu() - cpu_all - cpu
                    result["round"] = n + 1
                    result["server_cpu_seconds"] = cpu
                    result["server_cpu_us_per_request"] = (
                        cpu / result["requests"] * 1e6 if result["requests"] else None
                    )
                    if before is not None:
                        after = await status_counts(server.port)
                        route = row.path.split("?")[0]
                        by_status: dict[str, int] = {}
                        for (r, status), value in after.items():
                            delta = int(value - before.get((r, status), 0.0))
                            if r == route and delta:
                                by_status[status] = delta
                        result["server_statuses"] = by_status
                    row.rounds.append(result)
                    print(
                        f"  round {n + 1} {row.label:<26}{result['per_second']:>10,.0f} req/s",
                        flush=True,
                    )
            log_lines = {}
            for key, server in servers.items():
                if key.startswith("kervan") and server.log is not None:
                    with server.log.open("rb") as fh:
                        log_lines[key] = sum(1 for _ in fh)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    return summarise(args, client, servers, rows, log_lines, load_avg_start, started)


# ---------------------------------------------------------------- summary


def median_round(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    ordered = sorted(rounds, key=lambda r: r["per_second"])
    return ordered[(len(ordered) - 1) // 2]


def summarise(
    args: argparse.Namespace,
    client: str,
    servers: dict[str, Server],
    rows: list[Row],
    log_lines: dict[str, int],
    load_avg_start: float,
    started: float,
) -> dict[str, Any]:
    out_rows = []
    kept: dict[str, dict[str, Any]] = {}
    for row in rows:
        server = servers[row.server]
        entry: dict[str, Any] = {
            "row": row.key,
            "label": row.label,
            "server": server.description,
            "path": row.path,
        }
        if server.skipped is not None:
            entry["skipped"] = server.skipped
            out_rows.append(entry)
            continue
        best = median_round(row.rounds)
        kept[row.key] = best
        entry.update(
            {
                "requests_per_second": best["per_second"],
                "p50_ms": best.get("p50_ms"),
                "p90_ms": best.get("p90_ms"),
                "p99_ms": best.get("p99_ms"),
                "server_cpu_us_per_request": best["server_cpu_us_per_request"],
                "median_cpu_us_per_request": statistics.median(
                    r["server_cpu_us_per_request"] for r in row.rounds
                ),
                "other_servers_cpu_seconds_max": max(
                    r["other_servers_cpu_seconds"] for r in row.rounds
                ),
                "non_2xx": sum(r["non_2xx"] for r in row.rounds),
                "timeouts": sum(r["timeouts"] for r in row.rounds),
                "requests_all_rounds": sum(r["requests"] for r in row.rounds),
                "response_bytes": row.probe["body_bytes"],
                "content_type": row.probe["content_type"],
                "protections_seen": row.probe["protections"],
                "rounds": row.rounds,
            }
        )
        if row.server.startswith("kervan"):
            statuses: dict[str, int] = {}
            for r in row.rounds:
                for status, n in r.get("server_statuses", {}).items():
                    statuses[status] = statuses.get(status, 0) + n
            total = sum(statuses.values())
            ok = sum(n for s, n in statuses.items() if s.startswith("2"))
            entry["server_statuses"] = statuses
            entry["server_non_2xx"] = total - ok
            entry["server_2xx_percent"] = 100.0 * ok / total if total else None
        out_rows.append(entry)

    def ratio(a: str, b: str) -> float | None:
        if a in kept and b in kept and kept[b]["per_second"]:
            return float(kept[a]["per_second"] / kept[b]["per_second"])
        return None

    cpu = {
        row.key: statistics.median(r["server_cpu_us_per_request"] for r in row.rounds)
        for row in rows
        if row.rounds
    }

    def cpu_ratio(a: str, b: str) -> float | None:
        """Same direction as the req/s ratio: b's CPU per request over a's."""
        return float(cpu[b] / cpu[a]) if a in cpu and b in cpu and cpu[a] else None

    def per_round(a: str, b: str) -> list[float]:
        ra = {r["round"]: r["per_second"] for r in next(x for x in rows if x.key == a).rounds}
        rb = {r["round"]: r["per_second"] for r in next(x for x in rows if x.key == b).rounds}
        return [ra[n] / rb[n] for n in sorted(ra) if rb.get(n)]

    ratios: list[dict[str, Any]] = []
    for (suffix, label, interface), level in itertools.product(INTERFACES, ("info", "warning")):
        name = f"{label} {level.upper()}"
        key = f"kervan{suffix}_{level}"
        bare, bare_name = (
            ("bare_rsgi", "bare RSGI") if interface == "rsgi" else ("bare", "bare ASGI")
        )
        for a, b, goal, what in (
            (f"{key}_rules", "fastify_cached", 1.0, f"kervan rules{name} / Fastify cached"),
            (f"{key}_health", "starlette", 0.8, f"kervan /health{name} / plain Starlette"),
            (f"{key}_rules", "fastify_simulate", None, f"kervan rules{name} / Fastify simulate"),
            (f"{key}_health", bare, None, f"kervan /health{name} / {bare_name}"),
            (f"{key}_rules", bare, None, f"kervan rules{name} / {bare_name}"),
        ):
            value = ratio(a, b)
            ratios.append(
                {
                    "ratio": what,
                    "value": value,
                    "per_round": per_round(a, b) if value is not None else [],
                    "by_cpu_per_request": cpu_ratio(a, b),
                    "goal": goal,
                    "met": None if goal is None or value is None else value >= goal,
                    "skipped": None
                    if value is not None
                    else servers[next(x.server for x in rows if x.key == b)].skipped,
                }
            )
    for a, b, what in (
        ("starlette", "bare", "plain Starlette / bare ASGI"),
        ("fastify_cached", "bare", "Fastify cached / bare ASGI"),
        ("bare_rsgi", "bare", "bare RSGI / bare ASGI"),
        ("bare_rsgi", "fastify_cached", "bare RSGI / Fastify cached"),
    ):
        value = ratio(a, b)
        ratios.append(
            {
                "ratio": what,
                "value": value,
                "per_round": per_round(a, b) if value else [],
                "by_cpu_per_request": cpu_ratio(a, b),
                "skipped": None if value is not None else servers[a].skipped,
            }
        )

    from importlib.metadata import version

    node = shutil.which("node")
    node_version = (
        subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
        if node
        else None
    )
    if client == "wrk":
        client_text = (
            f"wrk -t1 -c{args.connections} -d{round(args.seconds)}s --latency --timeout=10s, "
            f"header Origin: {ORIGIN}"
        )
    else:
        client_text = (
            f"wrk missing (apt-get install -y wrk): bench/loadgen.py asyncio client, "
            f"{args.connections} connections, {args.seconds:g}s, header Origin: {ORIGIN}"
        )
    return {
        "bench": "http",
        "client": client_text,
        "rounds": args.rounds,
        "kept": "median round by req/s (the lower middle one for an even count; p50/p99 of "
        "that round); non-2xx summed over all rounds; ratios of the kept req/s",
        "seconds_per_run": args.seconds,
        "kervan": {
            "setup": "kervan serve --migrate (ASGI, and RSGI with KERVAN_SERVER_INTERFACE=rsgi): "
            "granian 1 worker, uvloop, SQLite in a temp dir, "
            "embedded backends; flows for en-d: 2,000 pages / 10,000 edges (as load_speculation)",
            "protections": "KERVAN_ENV=production (security headers + HSTS), request id, CORS "
            f"(KERVAN_ALLOWED_ORIGINS={ORIGIN}, Origin sent), rate limit public.ip per IP "
            f"({RATELIMIT_POLICIES}; /health exempt by design), metrics, access log",
            "access_log": "JSON lines on stderr, redirected to a file in the temp dir",
            "log_lines_written": log_lines,
            "every_request_2xx": all(
                r.get("server_2xx_percent") == 100.0 and r["non_2xx"] == 0 and r["timeouts"] == 0
                for r in out_rows
                if r["row"].startswith("kervan") and "skipped" not in r
            ),
        },
        "fastify": {
            "version": fastify_pinned(),
            "node": node_version,
            "cached": "the segment's answer built at start (refreshed every 5 min), a JSON string",
            "simulate": "the original per-request Monte-Carlo (5000 walks x 3 steps, top 8) over "
            "the same graph, edge rows from memory instead of MariaDB",
        },
        "rows": out_rows,
        "ratios": ratios,
        "seconds_total": time.monotonic() - started,
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_1min_start": load_avg_start,
            "load_average_1min_end": os.getloadavg()[0],
            "python": platform.python_version(),
            "granian": version("granian"),
            "starlette": version("starlette"),
        },
    }


def fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_report(result: dict[str, Any]) -> None:
    print(f"\nclient: {result['client']}")
    print(f"{result['rounds']} interleaved rounds; kept: {result['kept']}")
    print(
        "CPU us/req: the server's process tree, median over rounds. non-2xx: the client's "
        "count (wrk's is non-2xx-or-3xx) plus timeouts, all rounds. 2xx %: kervan's own "
        "count from /metrics, all rounds"
    )
    head = (
        f"{'row':<26}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'CPU us/req':>11}"
        f"{'non-2xx':>9}{'2xx %':>9}{'bytes':>7}"
    )
    print(head)
    print("-" * len(head))
    for row in result["rows"]:
        if "skipped" in row:
            print(f"{row['label']:<26}  skipped: {row['skipped']}")
            continue
        print(
            f"{row['label']:<26}{row['requests_per_second']:>10,.0f}{fmt(row['p50_ms'], '.2f'):>9}"
            f"{fmt(row['p99_ms'], '.2f'):>9}{fmt(row['median_cpu_us_per_request'], '.0f'):>11}"
            f"{row['non_2xx'] + row['timeouts']:>9}{fmt(row.get('server_2xx_percent'), '.2f'):>9}"
            f"{row['response_bytes']:>7}"
        )
    kervan_rows = [
        r for r in result["rows"] if r["row"].startswith("kervan") and "skipped" not in r
    ]
    for row in kervan_rows:
        statuses = ", ".join(f"{s}: {n:,}" for s, n in sorted(row["server_statuses"].items()))
        print(
            f"  {row['label']}: statuses {statuses or 'not found in /metrics'}; "
            f"protections seen: {', '.join(row['protections_seen'])}"
        )
    all_ok = all(
        r.get("server_2xx_percent") == 100.0 and r["non_2xx"] == 0 and r["timeouts"] == 0
        for r in kervan_rows
    )
    print(
        f"every kervan request answered 2xx (no rate-limit refusals): {'yes' if all_ok else 'NO'}"
    )
    idle = [r["other_servers_cpu_seconds_max"] for r in result["rows"] if "skipped" not in r]
    if idle:
        print(f"idle contenders burned at most {max(idle):.2f} CPU s during any one run")
    kervan = result["kervan"]
    print(f"kervan: {kervan['protections']}")
    print(f"access log: {kervan['access_log']}; lines: {kervan['log_lines_written']}")
    print(
        "\nratios of req/s (kept rounds), each round's, and of CPU per request (the baseline's "
        "over kervan's: the same direction, steadier on a shared machine); goals judged on req/s:"
    )
    for r in result["ratios"]:
        rounds = ", ".join(f"{x:.2f}" for x in r["per_round"])
        if r["value"] is None:
            text = f"not measured ({r.get('skipped')})"
        else:
            text = (
                f"{r['value']:>6.2f}  [rounds {rounds}]  CPU {fmt(r['by_cpu_per_request'], '.2f')}"
            )
        if r.get("goal") is not None:
            verdict = "-" if r["met"] is None else ("met" if r["met"] else "NOT MET")
            text += f"  goal >= {r['goal']:.1f}: {verdict}"
        print(f"  {r['ratio']:<42}{text}")
    print(f"\nrun took {result['seconds_total']:.0f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/http.json")
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    budget = 300 + args.rounds * 13 * (args.seconds + 6)
    result = asyncio.run(asyncio.wait_for(run(args), timeout=budget))
    print_report(result)
    import orjson

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
