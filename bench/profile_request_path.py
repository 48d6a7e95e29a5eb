"""Where a kervan request's time goes: the rules endpoint under load, profiled.

Starts one ``kervan serve`` as ``bench/bench_http.py`` does (granian, one worker, uvloop, SQLite
in a temp dir, seeded flows, every protection on, log level ``--level``, access log to a file),
then, while ``wrk -t1 -c32`` loads ``GET /perf/speculation/dynamic?seg=en-d`` for
``--seconds``, samples the granian worker with ``py-spy record`` (installed into the venv with
``.venv/bin/uv pip install py-spy`` if missing). When py-spy cannot attach (no ptrace here, say),
or with ``--profiler cprofile``, the server runs in a child process on granian's embedded server
with cProfile switched on for the load window only.

Prints where the time goes: the samples (or cProfile's own time) grouped by part of the request
path, granian/asyncio, starlette, kervan middleware (the edge), logging, metrics, the handler
(routes, speculation, core), other, with a standard-library function charged to the nearest
caller that belongs to one of them (``uuid4`` called by the edge counts as the edge), then the top
functions by own time and the CPU time of each worker thread (from /proc, so granian's Rust
threads, which py-spy sees without Python frames, are counted too). Writes
bench/results/request_path_profile.json.

py-spy samples with ``--gil`` by default: only a thread holding the GIL counts, since py-spy
takes some blocked threads (aiosqlite's, granian's) for busy; ``--all-threads`` drops it. It
samples native frames too (``--native``, on by default; retried without it if py-spy fails): a
native frame counts for granian/asyncio when it is granian's or uvloop's, else (libc,
libpython) for the nearest caller's group. With ``--no-native`` a Python line's own time
includes the native code it calls (granian's ``send`` under ``await send(...)``).

    .venv/bin/python bench/profile_request_path.py [--seconds 10] [--level INFO|WARNING]
        [--profiler auto|py-spy|cprofile] [--no-native] [--nonblocking] [--rate 200] [--top 25]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import linecache
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.bench_http import ADMIN_KEY, ORIGIN, RULES, kervan_env, seed_flows  # noqa: E402
from bench.load_speculation import synthetic_edges  # noqa: E402
from bench.loadgen import (  # noqa: E402
    drive,
    free_port,
    kervan_server,
    kervan_server_env,
    process_server,
    run_wrk,
    wrk_path,
)

GROUPS = (
    "granian/asyncio",
    "starlette",
    "kervan middleware",
    "logging",
    "metrics",
    "handler",
    "background (db, queue, periodic)",
    "other",
)
BACKGROUND = "background (db, queue, periodic)"
NATIVE = "no Python frame (granian Rust / C)"
STDLIB = Path(sysconfig.get_paths()["stdlib"]).resolve()
SITE = "site-packages/"
PACKAGE_GROUPS = {
    "granian": "granian/asyncio",
    "uvloop": "granian/asyncio",
    "starlette": "starlette",
    "anyio": "starlette",
    "prometheus_client": "metrics",
    "pydantic": "handler",
    "pydantic_core": "handler",
    "sqlalchemy": BACKGROUND,
    "aiosqlite": BACKGROUND,
}
BACKGROUND_PATHS = (
    "service/db/",
    "service/queue/",
    "service/periodic.py",
    "service/heartbeat.py",
    "service/worker_process.py",
)
MIDDLEWARE_FILES = ("service/edge.py", "service/fast_routes.py", "service/clientip.py")
MIDDLEWARE_DIRS = (
    "service/middleware/",
    "service/ratelimit/",
    "core/ratelimit/",
    "native/",
    "service/rsgi/",  # the RSGI interface's edge steps and ASGI bridge
)
LOGGING_FILES = ("service/logging.py", "service/access_log.py")


def classify(filename: str) -> str | None:
    """The group of a source file; None for the standard library and the unknown (the caller's
    group is used instead)."""
    if filename.startswith(("<", "[", "~")):  # generated code, vdso, cProfile's builtins
        return None
    if "uvloop" in filename or "_asynciomodule" in filename:
        return "granian/asyncio"
    path = Path(filename)
    if SITE in filename:
        package = filename.split(SITE, 1)[1].split("/", 1)[0].removesuffix(".py")
        return PACKAGE_GROUPS.get(package.split(".")[0], "other")
    try:
        rel = path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        rel = None
    if rel is not None:
        if rel.startswith("bench/"):
            return "handler"
        if rel in LOGGING_FILES:
            return "logging"
        if rel.startswith(BACKGROUND_PATHS):
            return BACKGROUND
        if rel.endswith("metrics.py"):
            return "metrics"
        if rel in MIDDLEWARE_FILES or rel.startswith(MIDDLEWARE_DIRS):
            return "kervan middleware"
        if rel.startswith(("service/", "core/")):
            return "handler"
        return "other"
    try:
        stdlib_rel = path.resolve().relative_to(STDLIB).as_posix()
    except ValueError:
        # Native code outside the packages (libc, libpython, --native): the caller's group.
        return None
    if stdlib_rel.startswith(("asyncio/", "selectors", "concurrent/")):
        return "granian/asyncio"
    if stdlib_rel.startswith("logging/"):
        return "logging"
    return None


# ---------------------------------------------------------------- worker threads (from /proc)


def descendants(pid: int) -> list[int]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            tree.setdefault(int(stat.rpartition(")")[2].split()[1]), []).append(int(entry))
    found, stack = [], list(tree.get(pid, ()))
    while stack:
        child = stack.pop()
        found.append(child)
        stack.extend(tree.get(child, ()))
    return found


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds per thread of ``pid``, keyed ``name/tid``."""
    ticks = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:  # gone
        return out
    for tid in tids:
        try:
            name = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
            fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        out[f"{name}/{tid}"] = (int(fields[11]) + int(fields[12])) / ticks
    return out


def process_cpu(pid: int) -> float:
    return sum(thread_cpu(pid).values())


# ---------------------------------------------------------------- load


async def load(port: int, seconds: float, connections: int) -> dict[str, Any]:
    if wrk_path() is not None:
        result = await run_wrk(
            f"http://127.0.0.1:{port}{RULES}",
            seconds,
            connections=connections,
            headers={"Origin": ORIGIN},
        )
        result["client"] = f"wrk -t1 -c{connections}"
        return result
    request = f"GET {RULES} HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: {ORIGIN}\r\n\r\n".encode()
    result = await drive(port, lambda: request, range(200, 300), seconds, connections)
    result["client"] = f"bench/loadgen.py asyncio client, {connections} connections (no wrk)"
    return result


# ---------------------------------------------------------------- py-spy


def py_spy_path() -> str | None:
    local = Path(sys.executable).parent / "py-spy"
    return str(local) if local.exists() else shutil.which("py-spy")


_THREAD = re.compile(r"^thread \((\w+)\)(?:: (.*))?$")
Frame = tuple[str, str, int]  # function, filename, line


def parse_py_spy_raw(
    text: str,
) -> tuple[list[tuple[list[Frame], int]], dict[str, int], dict[str, str]]:
    """Collapsed stacks ``thread (tid): name;frame;...;frame N`` -> ([(frames, count)],
    samples per thread id, thread names). A frame is ``(function, filename, line)``, root
    first."""
    stacks: list[tuple[list[Frame], int]] = []
    threads: Counter[str] = Counter()
    names: dict[str, str] = {}
    for line in text.splitlines():
        body, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        parts = body.split(";") if body else []
        thread = "?"
        while parts and parts[0].startswith(("thread (", "process ")):
            head = _THREAD.match(parts.pop(0))
            if head is not None:
                thread = head.group(1)
                if head.group(2):
                    names[thread] = head.group(2)
        threads[thread] += count
        frames = []
        for part in parts:
            name, _, where = part.rpartition(" (")
            filename, _, lineno = where.rstrip(")").rpartition(":")
            if not lineno.isdigit():
                filename, lineno = where.rstrip(")"), "0"
            frames.append((name or part, filename, int(lineno)))
        stacks.append((frames, count))
    return stacks, dict(threads.most_common()), names


def summarise_stacks(stacks: list[tuple[list[Frame], int]], top: int) -> dict[str, Any]:
    groups: Counter[str] = Counter()
    own: Counter[tuple[str, str]] = Counter()
    lines: Counter[Frame] = Counter()
    charged: defaultdict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    total = sum(count for _, count in stacks)
    for frames, count in stacks:
        if not frames:
            groups[NATIVE] += count
            continue
        name, filename, _ = frames[-1]
        own[(name, filename)] += count
        lines[frames[-1]] += count
        group = next(
            (g for g in (classify(f) for _, f, _ in reversed(frames)) if g is not None), "other"
        )
        groups[group] += count
        charged[(name, filename)][group] += count
    return {
        "unit": "samples",
        "total": total,
        "groups": [
            {"group": g, "samples": groups[g], "percent": 100.0 * groups[g] / total}
            for g in (*GROUPS, NATIVE)
            if groups[g]
        ],
        "top_functions": [
            {
                "function": name,
                "file": short(filename),
                "group": classify(filename)
                or f"{charged[(name, filename)].most_common(1)[0][0]} (caller's)",
                "samples": n,
                "percent": 100.0 * n / total,
            }
            for (name, filename), n in own.most_common(top)
        ],
        "top_lines": [
            {
                "function": name,
                "where": f"{short(filename)}:{lineno}",
                "code": linecache.getline(filename, lineno).strip()[:80],
                "samples": n,
                "percent": 100.0 * n / total,
            }
            for (name, filename, lineno), n in lines.most_common(max(10, top // 2))
        ],
    }


def short(filename: str) -> str:
    if SITE in filename:
        return filename.split(SITE, 1)[1]
    for base in (ROOT, STDLIB):
        try:
            return Path(filename).resolve().relative_to(base).as_posix()
        except ValueError:
            continue
    return filename


async def profile_py_spy(args: argparse.Namespace, tmp: Path) -> dict[str, Any] | None:
    """The py-spy profile; None when py-spy is missing or cannot sample the worker."""
    binary = py_spy_path()
    if binary is None:
        print("py-spy missing (.venv/bin/uv pip install py-spy)", file=sys.stderr)
        return None
    port = free_port()
    tmp.mkdir(parents=True, exist_ok=True)
    log = tmp / "server.log"
    async with kervan_server(
        port,
        tmp,
        database_url=f"sqlite+aiosqlite:///{tmp / 'kervan.db'}",
        admin_key=ADMIN_KEY,
        root=ROOT,
        extra_env={**kervan_env(args.level), "KERVAN_SERVER_INTERFACE": args.interface},
        log_path=log,
    ) as server:
        await seed_flows(port, synthetic_edges(1))
        await load(port, 2, args.connections)  # warm-up; also shows which child serves
        children = [p for p in descendants(server.pid) if Path(f"/proc/{p}").exists()]
        if not children:
            raise RuntimeError("no granian worker process found")
        worker = max(children, key=process_cpu)
        raw = tmp / "py-spy.txt"
        argv = [binary, "record", "--pid", str(worker), "--duration", str(round(args.seconds))]
        argv += ["--rate", str(args.rate), "--format", "raw", "--output", str(raw)]
        argv += ["--full-filenames", "--threads"]
        if not args.all_threads:
            argv.append("--gil")
        if args.nonblocking:
            argv.append("--nonblocking")
        if args.native:
            argv.append("--native")
        before = thread_cpu(worker)
        spy = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        await asyncio.sleep(0.3)
        loaded = asyncio.ensure_future(load(port, args.seconds + 1, args.connections))
        try:
            out, _ = await asyncio.wait_for(spy.communicate(), args.seconds + 30)
        except TimeoutError:
            spy.kill()
            await spy.wait()
            raise
        after = thread_cpu(worker)
        wrk = await loaded
        text = out.decode(errors="replace")
        if spy.returncode != 0 or not raw.exists():
            print(f"py-spy failed ({spy.returncode}): {text.strip()[-400:]}", file=sys.stderr)
            return None
        stacks, threads, names = parse_py_spy_raw(raw.read_text())
        if not stacks:
            print(f"py-spy recorded no samples: {text.strip()[-400:]}", file=sys.stderr)
            return None
        summary = summarise_stacks(stacks, args.top)
        said = re.search(r"Samples: \d+ Errors: \d+", text)
        errors = said.group(0) if said else ""
        summary.update(
            {
                "profiler": f"py-spy {py_spy_version(binary)} record --rate {args.rate} "
                f"({'non' if args.nonblocking else ''}blocking), --threads"
                + ("" if args.all_threads else " --gil (only samples holding the GIL)")
                + (" --native" if args.native else ""),
                "py_spy_said": errors,
                "worker_pid": worker,
                "samples_per_thread": {f"{names.get(t, '?')}/{t}": n for t, n in threads.items()},
                "thread_cpu_seconds": cpu_delta(before, after, names),
                "load": wrk,
                "log_lines": sum(1 for _ in log.open("rb")),
            }
        )
        return summary


def py_spy_version(binary: str) -> str:
    done = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    return done.stdout.strip().removeprefix("py-spy ")


def cpu_delta(
    before: dict[str, float], after: dict[str, float], names: dict[str, str] | None = None
) -> dict[str, float]:
    """CPU seconds per thread between two ``thread_cpu`` readings; Python's thread names (from
    py-spy) replace the kernel's where known."""

    def label(key: str) -> str:
        comm, _, tid = key.rpartition("/")
        return f"{(names or {}).get(tid, comm)}/{tid}"

    delta = {label(k): round(v - before.get(k, 0.0), 3) for k, v in after.items()}
    return dict(sorted(((k, v) for k, v in delta.items() if v > 0), key=lambda kv: -kv[1]))


# ---------------------------------------------------------------- cProfile fallback


def serve_cprofile(stats_path: Path) -> None:
    """Child process: kervan on granian's embedded server, cProfile on between SIGUSR1 and
    SIGUSR2 (stats written then), stopped by SIGTERM."""
    import cProfile

    import uvloop
    from granian.constants import Interfaces
    from granian.server.embed import Server

    from service.asgi import app_factory as asgi_factory
    from service.rsgi import app_factory as rsgi_factory

    rsgi = os.environ.get("KERVAN_SERVER_INTERFACE") == "rsgi"
    settings_port = int(os.environ["KERVAN_PORT"])
    profiler = cProfile.Profile()

    async def main() -> None:
        server = Server(
            rsgi_factory if rsgi else asgi_factory,
            factory=True,
            address="127.0.0.1",
            port=settings_port,
            interface=Interfaces.RSGI if rsgi else Interfaces.ASGI,
            backlog=1024,
        )
        loop = asyncio.get_running_loop()

        def stop_profile() -> None:
            profiler.disable()
            profiler.dump_stats(stats_path)

        loop.add_signal_handler(signal.SIGUSR1, profiler.enable)
        loop.add_signal_handler(signal.SIGUSR2, stop_profile)
        loop.add_signal_handler(signal.SIGTERM, server.stop)
        await server.serve()

    uvloop.run(main())


def summarise_pstats(stats_path: Path, top: int) -> dict[str, Any]:
    import pstats

    stats = pstats.Stats(str(stats_path)).stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in stats.values())
    groups: Counter[str] = Counter()

    def group_of(func: tuple[str, int, str]) -> str | None:
        if func[0] == "~" and ("granian" in func[2] or "uvloop" in func[2]):
            return "granian/asyncio"  # e.g. granian's ASGIHTTPProtocol.send
        return classify(func[0])

    for func, (_, _, tottime, _, callers) in stats.items():
        group = group_of(func)
        seen = {func}
        current_callers = callers
        while group is None and current_callers:
            # The caller that spent most time calling it.
            caller = max(current_callers, key=lambda c: current_callers[c][3])
            if caller in seen:
                break
            seen.add(caller)
            group = group_of(caller)
            current_callers = stats.get(caller, (0, 0, 0, 0, {}))[4]
        groups[group or "other"] += tottime
    ranked = sorted(stats.items(), key=lambda kv: -kv[1][2])[:top]
    return {
        "unit": "seconds of own time (cProfile)",
        "total": total,
        "groups": [
            {"group": g, "seconds": groups[g], "percent": 100.0 * groups[g] / total}
            for g in GROUPS
            if groups[g]
        ],
        "top_functions": [
            {
                "function": f"{func[2]}:{func[1]}",
                "file": short(func[0]),
                "group": group_of(func) or "(a caller's group)",
                "seconds": entry[2],
                "calls": entry[1],
                "percent": 100.0 * entry[2] / total,
            }
            for func, entry in ranked
        ],
    }


async def profile_cprofile(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    port = free_port()
    tmp.mkdir(parents=True, exist_ok=True)
    env = kervan_server_env(
        port,
        tmp,
        database_url=f"sqlite+aiosqlite:///{tmp / 'kervan.db'}",
        admin_key=ADMIN_KEY,
        root=ROOT,
        extra_env={**kervan_env(args.level), "KERVAN_SERVER_INTERFACE": args.interface},
    )
    migrate = subprocess.run(
        [sys.executable, "-m", "service.cli", "migrate"],
        cwd=tmp,
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    if migrate.returncode != 0:
        raise RuntimeError(f"migrate failed: {migrate.stderr.decode()[-1000:]}")
    stats_path = tmp / "request_path.pstats"
    log = tmp / "server.log"
    argv = [sys.executable, str(Path(__file__).resolve()), "--serve-cprofile", str(stats_path)]
    async with process_server(argv, port, cwd=tmp, env=env, log_path=log) as server:
        await seed_flows(port, synthetic_edges(1))
        await load(port, 2, args.connections)
        before = thread_cpu(server.pid)
        os.kill(server.pid, signal.SIGUSR1)
        wrk = await load(port, args.seconds, args.connections)
        os.kill(server.pid, signal.SIGUSR2)
        after = thread_cpu(server.pid)
        deadline = time.monotonic() + 30
        while not stats_path.exists() and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        await asyncio.sleep(0.5)
    summary = summarise_pstats(stats_path, args.top)
    summary.update(
        {
            "profiler": "cProfile in the server process (granian embedded server), load window "
            "only; cProfile slows Python code several times, so shares are indicative",
            "thread_cpu_seconds": cpu_delta(before, after),
            "load": wrk,
            "log_lines": sum(1 for _ in log.open("rb")),
        }
    )
    return summary


# ---------------------------------------------------------------- report


async def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="kervan-profile-"))
    try:
        summary = None
        if args.profiler in ("auto", "py-spy"):
            summary = await profile_py_spy(args, tmp / "py-spy")
            if summary is None and args.native:
                print("retrying py-spy without --native", file=sys.stderr)
                args.native = False
                summary = await profile_py_spy(args, tmp / "py-spy-python-only")
            if summary is None and args.profiler == "py-spy":
                raise SystemExit("py-spy could not profile the server")
        if summary is None:
            print("profiling in-process with cProfile", file=sys.stderr)
            summary = await profile_cprofile(args, tmp / "cprofile")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "bench": "request_path_profile",
        "endpoint": f"GET {RULES} (cached answer), header Origin: {ORIGIN}",
        "server": f"kervan serve ({args.interface}): granian 1 worker, uvloop, SQLite, "
        f"embedded backends, every protection on, log level {args.level}, access log to a file",
        "interface": args.interface,
        "seconds": args.seconds,
        **summary,
        "seconds_total": time.monotonic() - started,
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_1min": os.getloadavg()[0],
            "python": platform.python_version(),
        },
    }


def print_report(result: dict[str, Any]) -> None:
    load = result["load"]
    print(f"\n{result['endpoint']}; {result['server']}")
    print(f"profiler: {result['profiler']}")
    if "py_spy_said" in result:
        print(f"  {result['py_spy_said']}")
    print(
        f"load while profiling: {load['client']}, {load['per_second']:,.0f} req/s "
        f"(the profiler slows the server), access log lines: {result['log_lines']:,}"
    )
    unit = "samples" if result["unit"] == "samples" else "seconds"
    print(
        f"\nwhere the time goes ({result['unit']}, total {result['total']:,.2f}; stdlib "
        "functions charged to their nearest caller's group):"
    )
    for g in result["groups"]:
        value = g[unit]
        print(f"  {g['group']:<36}{g['percent']:>6.1f}%  {value:>10,.2f}")
    print(f"\ntop {len(result['top_functions'])} functions by own time:")
    for f in result["top_functions"]:
        print(f"  {f['percent']:>5.1f}%  {f['group']:<34} {f['function']}  ({f['file']})")
    if result.get("top_lines"):
        print(
            "\ntop lines by own time"
            + (
                ""
                if "--native" in result["profiler"]
                else " (a line's own time includes the native code it calls, e.g. granian's "
                "send under `await send(...)`)"
            )
            + ":"
        )
        for f in result["top_lines"]:
            print(f"  {f['percent']:>5.1f}%  {f['where']:<34} {f['code'] or f['function']}")
    print("\nworker CPU seconds per thread during the window (/proc):")
    for name, seconds in result["thread_cpu_seconds"].items():
        print(f"  {name:<28}{seconds:>7.2f}")
    if "samples_per_thread" in result:
        print(
            "py-spy samples per thread: "
            + ", ".join(f"{k}: {v}" for k, v in result["samples_per_thread"].items())
        )
    print_before_after(result)
    print(f"\nrun took {result['seconds_total']:.0f}s")


#: The same profile taken of the request path before the edge (commit d8c7f42: four middlewares,
#: the router for every request, access lines through ``logging``), kept for the comparison.
BEFORE = ROOT / "bench" / "results" / "request_path_profile_before.json"


def print_before_after(result: dict[str, Any]) -> None:
    if not BEFORE.exists():
        return
    before = json.loads(BEFORE.read_text())
    old = {g["group"]: g["percent"] for g in before["groups"]}
    new = {g["group"]: g["percent"] for g in result["groups"]}
    rate_old, rate_new = before["load"]["per_second"], result["load"]["per_second"]
    print(
        f"\nbefore -> after (share of samples; req/s while profiled {rate_old:,.0f} -> "
        f"{rate_new:,.0f}, {rate_new / rate_old:.1f}x):"
    )
    for group in dict.fromkeys([*old, *new]):
        print(f"  {group:<36}{old.get(group, 0.0):>6.1f}% -> {new.get(group, 0.0):>5.1f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--level", choices=["INFO", "WARNING"], default="INFO")
    parser.add_argument("--profiler", choices=["auto", "py-spy", "cprofile"], default="auto")
    parser.add_argument("--nonblocking", action="store_true", help="py-spy --nonblocking")
    parser.add_argument(
        "--native",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="py-spy --native: native frames too (granian's Rust, uvloop's C, libc); on by "
        "default, retried without it if py-spy fails",
    )
    parser.add_argument(
        "--all-threads",
        action="store_true",
        help="py-spy without --gil: every thread py-spy thinks busy (it counts some blocked "
        "threads, aiosqlite's and granian's, as busy)",
    )
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument(
        "--out", type=Path, default=ROOT / "bench/results/request_path_profile.json"
    )
    parser.add_argument(
        "--interface",
        choices=["asgi", "rsgi"],
        default="asgi",
        help="KERVAN_SERVER_INTERFACE of the profiled server (rsgi: results in "
        "request_path_profile_rsgi.json unless --out is given)",
    )
    parser.add_argument("--serve-cprofile", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.interface == "rsgi" and args.out == ROOT / "bench/results/request_path_profile.json":
        args.out = ROOT / "bench/results/request_path_profile_rsgi.json"
    if args.serve_cprofile is not None:
        serve_cprofile(args.serve_cprofile)
        return
    result = asyncio.run(asyncio.wait_for(run(args), timeout=300 + 3 * args.seconds))
    print_report(result)
    import orjson

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
