"""A small keep-alive HTTP/1.1 load generator for the load benches (loopback only).

Raw asyncio streams rather than an HTTP client library, so the client costs little next to
the server it measures; every loop is bounded in time and stops by itself.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Container
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def read_response(reader: asyncio.StreamReader) -> int:
    """Read one response (head and Content-Length body); return its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
            if length:
                await reader.readexactly(length)
    return status


async def wait_ready(port: int, deadline: float, path: str = "/health") -> None:
    """Poll ``path`` until it answers 200 or ``deadline`` (monotonic) passes."""
    while time.monotonic() < deadline:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            status = await read_response(reader)
            writer.close()
            if status == 200:
                return
        except OSError:
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError("the server did not become ready in time")


async def connection_loop(
    port: int,
    make: Callable[[], bytes],
    ok: Container[int],
    stop_at: float,
    latencies: list[float],
    errors: list[int],
) -> None:
    """One connection sending ``make()`` requests back to back until ``stop_at``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < stop_at:
            request = make()
            started = time.perf_counter()
            writer.write(request)
            status = await read_response(reader)
            if status in ok:
                latencies.append(time.perf_counter() - started)
            else:
                errors.append(status)
    finally:
        writer.close()


async def drive(
    port: int,
    make: Callable[[], bytes],
    ok: Container[int],
    seconds: float,
    connections: int,
    *,
    warm_connections: int = 2,
) -> dict[str, Any]:
    """Half a second of warm-up, then ``connections`` loops for ``seconds``; the figures."""
    await asyncio.gather(
        *(
            connection_loop(port, make, ok, time.perf_counter() + 0.5, [], [])
            for _ in range(warm_connections)
        )
    )
    latencies: list[float] = []
    errors: list[int] = []
    started = time.perf_counter()
    stop_at = started + seconds
    await asyncio.gather(
        *(connection_loop(port, make, ok, stop_at, latencies, errors) for _ in range(connections))
    )
    elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(p: float) -> float:
        if not latencies:
            return float("nan")
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1000

    return {
        "requests": len(latencies),
        "seconds": elapsed,
        "per_second": len(latencies) / elapsed,
        "p50_ms": pct(50),
        "p90_ms": pct(90),
        "p99_ms": pct(99),
        "max_ms": latencies[-1] * 1000 if latencies else float("nan"),
        "errors": len(errors),
        "error_statuses": sorted(set(errors))[:5],
    }


def kervan_server_env(
    port: int,
    workdir: Path,
    *,
    database_url: str,
    admin_key: str,
    root: Path,
    extra_env: dict[str, str] | None = None,
) -> dict[str, str]:
    """The environment ``kervan_server`` runs ``kervan serve`` with (one worker, embedded)."""
    env = {
        **os.environ,
        "KERVAN_HOST": "127.0.0.1",
        "KERVAN_PORT": str(port),
        "KERVAN_WORKERS": "1",
        "KERVAN_DATABASE_URL": database_url,
        "KERVAN_DATA_DIR": str(workdir / "data"),
        "KERVAN_ADMIN_API_KEY": admin_key,
        "KERVAN_PUBLIC_ORIGIN": "https://example.com",
        "KERVAN_LOG_LEVEL": "WARNING",
        "KERVAN_RATELIMIT_DEFAULT_POLICY": "",
        "PYTHONPATH": str(root),
        **(extra_env or {}),
    }
    env.pop("KERVAN_REDIS_URL", None)
    return env


@asynccontextmanager
async def kervan_server(
    port: int,
    workdir: Path,
    *,
    database_url: str,
    admin_key: str,
    root: Path,
    extra_env: dict[str, str] | None = None,
    log_path: Path | None = None,
) -> AsyncIterator[subprocess.Popen[bytes]]:
    """``kervan serve --migrate`` (granian, one worker, embedded backends) until the block ends.

    The app-wide per-IP rate limit is off: one loopback client would be throttled at once
    (``extra_env`` may set it again). The server's logs (stderr) go to ``log_path`` when given,
    a file that a busy server at INFO cannot fill up as it would a pipe; otherwise to a pipe
    whose tail is shown if the server fails. Yields the ``kervan serve`` process (granian's
    parent; the worker that serves is its child).
    """
    env = kervan_server_env(
        port,
        workdir,
        database_url=database_url,
        admin_key=admin_key,
        root=root,
        extra_env=extra_env,
    )
    log = open(log_path, "ab") if log_path is not None else None  # noqa: SIM115
    server = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--migrate"],
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log if log is not None else subprocess.PIPE,
    )
    try:
        await wait_ready(port, time.monotonic() + 90)
        yield server
    finally:
        stop_process(server, 30)
        if log is not None:
            log.close()
        if server.returncode not in (0, -15):
            if server.stderr is not None:
                sys.stderr.write(server.stderr.read().decode(errors="replace")[-3000:])
            elif log_path is not None:
                sys.stderr.write(log_path.read_bytes()[-3000:].decode(errors="replace"))


def stop_process(server: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM, then SIGKILL when the process has not ended within ``grace`` seconds."""
    server.terminate()
    try:
        server.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


@asynccontextmanager
async def process_server(
    argv: list[str],
    port: int,
    *,
    cwd: Path,
    log_path: Path,
    env: dict[str, str] | None = None,
    ready_path: str = "/health",
) -> AsyncIterator[subprocess.Popen[bytes]]:
    """Any HTTP server process (``argv``, listening on ``port``) until the block ends.

    Ready when ``ready_path`` answers 200; its output goes to ``log_path``, shown on failure.
    """
    with open(log_path, "ab") as log:
        server = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            await wait_ready(port, time.monotonic() + 60, ready_path)
            yield server
        finally:
            stop_process(server, 20)
    if server.returncode not in (0, -15):
        sys.stderr.write(log_path.read_bytes()[-3000:].decode(errors="replace"))


def wrk_path() -> str | None:
    """The ``wrk`` binary, or None (``apt-get install -y wrk``)."""
    return shutil.which("wrk")


_WRK_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_WRK_PERCENTILE = re.compile(r"^\s*(50|75|90|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m)\s*$", re.M)
_WRK_TOTAL = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m)", re.M)
_WRK_RATE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.M)
_WRK_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_WRK_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


def parse_wrk(text: str) -> dict[str, Any]:
    """The figures of one ``wrk --latency`` report (latencies in ms)."""
    total = _WRK_TOTAL.search(text)
    rate = _WRK_RATE.search(text)
    if total is None or rate is None:
        raise ValueError(f"not a wrk report: {text[-500:]!r}")
    result: dict[str, Any] = {
        "requests": int(total.group(1)),
        "seconds": float(total.group(2)) * _WRK_UNITS[total.group(3)] / 1000,
        "per_second": float(rate.group(1)),
    }
    for pct, value, unit in _WRK_PERCENTILE.findall(text):
        result[f"p{pct}_ms"] = float(value) * _WRK_UNITS[unit]
    non_2xx = _WRK_NON_2XX.search(text)
    result["non_2xx_3xx"] = int(non_2xx.group(1)) if non_2xx else 0
    socket_errors = _WRK_SOCKET.search(text)
    result["socket_errors"] = (
        dict(
            zip(
                ("connect", "read", "write", "timeout"),
                map(int, socket_errors.groups()),
                strict=True,
            )
        )
        if socket_errors
        else {"connect": 0, "read": 0, "write": 0, "timeout": 0}
    )
    return result


async def run_wrk(
    url: str,
    seconds: float,
    *,
    connections: int = 32,
    threads: int = 1,
    headers: dict[str, str] | None = None,
    timeout_seconds: float = 10.0,
) -> dict[str, Any]:
    """``wrk -t<threads> -c<connections> -d<seconds>s --latency`` against a loopback ``url``."""
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError("load stays on 127.0.0.1")
    binary = wrk_path()
    if binary is None:
        raise RuntimeError("wrk is not installed")
    argv = [
        binary,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        f"--timeout={max(1, round(timeout_seconds))}s",
        "--latency",
    ]
    for name, value in (headers or {}).items():
        argv += ["-H", f"{name}: {value}"]
    process = await asyncio.create_subprocess_exec(
        *argv, url, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), seconds + timeout_seconds + 20)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    if process.returncode != 0:
        raise RuntimeError(f"wrk failed ({process.returncode}): {out.decode(errors='replace')}")
    return parse_wrk(out.decode(errors="replace"))
