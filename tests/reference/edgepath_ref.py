"""Plain-Python oracle of ``native/_edgepath.pyx``'s line format, timestamps and counters: the
access log and HTTP metrics as the Python edge wrote them before they were compiled."""

from __future__ import annotations

from bisect import bisect_left
from datetime import UTC, datetime

import orjson

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def timestamp(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def access_line(
    ts: str,
    method: str,
    path: str,
    route: str,
    status: int,
    elapsed: float,
    client_ip: str,
    request_id: str,
) -> bytes:
    return orjson.dumps(
        {
            "ts": ts,
            "level": "info",
            "logger": "kervan.access",
            "msg": f"{method} {path} {status}",
            "request_id": request_id,
            "method": method,
            "path": path,
            "route": route,
            "status": status,
            "duration_ms": round(elapsed * 1000, 3),
            "client_ip": client_ip,
        },
        option=orjson.OPT_APPEND_NEWLINE,
    )


def observe(
    requests: dict[tuple[str, str, int], int],
    latency: dict[tuple[str, str], tuple[list[int], list[float]]],
    method: str,
    route: str,
    status: int,
    elapsed: float,
) -> None:
    key = (method, route, status)
    requests[key] = requests.get(key, 0) + 1
    found = latency.get((method, route))
    if found is None:
        found = latency[method, route] = ([0] * (len(BUCKETS) + 1), [0.0])
    found[0][bisect_left(BUCKETS, elapsed)] += 1
    found[1][0] += elapsed
