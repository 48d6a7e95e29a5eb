"""A small keep-alive HTTP/1.1 load generator for the load benches (loopback only).

Raw asyncio streams rather than an HTTP client library, so the client costs little next to
the server it measures; every loop is bounded in time and stops by itself.
"""

from __future__ import annotations

import asyncio
import os
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


async def wait_ready(port: int, deadline: float) -> None:
    """Poll ``/health`` until it answers 200 or ``deadline`` (monotonic) passes."""
    while time.monotonic() < deadline:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
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


@asynccontextmanager
async def kervan_server(
    port: int,
    workdir: Path,
    *,
    database_url: str,
    admin_key: str,
    root: Path,
    extra_env: dict[str, str] | None = None,
) -> AsyncIterator[None]:
    """``kervan serve --migrate`` (granian, one worker, embedded backends) until the block ends.

    The app-wide per-IP rate limit is off: one loopback client would be throttled at once.
    """
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
    server = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--migrate"],
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        await wait_ready(port, time.monotonic() + 90)
        yield
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        if server.returncode not in (0, -15) and server.stderr is not None:
            sys.stderr.write(server.stderr.read().decode(errors="replace")[-3000:])
