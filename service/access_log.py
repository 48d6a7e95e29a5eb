"""The access log: one JSON line per request, written off the event loop.

A request only appends its line to a buffer; the loop hands the buffer to a writer thread at most
every ``FLUSH_INTERVAL`` seconds (or sooner when it grows large), and the thread does the blocking
write to the log stream, so a slow log consumer never stalls request handling. The backlog the
thread has not written yet is bounded: past ``MAX_BACKLOG_BYTES`` new lines are counted as
dropped (a metric, and one line saying how many once the writer catches up) instead of growing
memory without end. ``close`` writes everything still buffered, so a clean shutdown loses
nothing.

Lines carry the same fields as the ``logging`` JSON formatter's (``ts``, ``level``, ``logger``,
``msg``, ``request_id`` and the request's fields); where logs are not JSON (the console format
of development), lines go through ``logging`` instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import select
import threading
import time
from datetime import UTC, datetime

import orjson
from prometheus_client import Counter

from service.logging import JsonFormatter
from service.metrics import REGISTRY

LOGGER = "kervan.access"
FLUSH_INTERVAL = 0.05
FLUSH_BYTES = 64 * 1024
MAX_BACKLOG_BYTES = 8 * 1024 * 1024

DROPPED = Counter(
    "kervan_access_log_dropped_total",
    "Access log lines dropped because the log stream could not keep up.",
    registry=REGISTRY,
)


def json_logs_configured() -> bool:
    """Whether the root logger writes JSON (then lines may bypass ``logging``)."""
    handlers = logging.getLogger().handlers
    return bool(handlers) and all(isinstance(h.formatter, JsonFormatter) for h in handlers)


class _Timestamps:
    """ISO 8601 times at millisecond precision, formatted once per millisecond."""

    __slots__ = ("_ms", "_text")

    def __init__(self) -> None:
        self._ms = -1
        self._text = ""

    def now(self) -> str:
        ms = time.time_ns() // 1_000_000
        if ms != self._ms:
            self._ms = ms
            self._text = datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")
        return self._text


class _Writer(threading.Thread):
    """Writes the chunks it is handed to a file descriptor, in order."""

    def __init__(self, fd: int) -> None:
        super().__init__(name="kervan-access-log", daemon=True)
        self.fd = fd
        self.chunks: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self.backlog = 0  # bytes handed over and not written yet
        self._lock = threading.Lock()

    def hand(self, chunk: bytes) -> None:
        with self._lock:
            self.backlog += len(chunk)
        self.chunks.put(chunk)

    def run(self) -> None:
        while (chunk := self.chunks.get()) is not None:
            for piece in _line_aligned(chunk):
                if not self._write(piece):
                    # The stream is gone: count what could not be written, keep consuming.
                    DROPPED.inc(piece.count(b"\n"))
            with self._lock:
                self.backlog -= len(chunk)

    def _write(self, piece: bytes) -> bool:
        view = memoryview(piece)
        while view:
            try:
                written = os.write(self.fd, view)
            except InterruptedError:
                continue
            except BlockingIOError:  # a non-blocking stream that is full: wait until writable
                select.select([], [self.fd], [], 1.0)
                continue
            except OSError:
                return False
            view = view[written:]
        return True


def _line_aligned(chunk: bytes, limit: int = select.PIPE_BUF) -> list[bytes]:
    """``chunk`` cut at line ends into writes of at most ``limit`` bytes (a longer line alone):
    other processes (granian workers, ``logging``) write to the same stream, and only writes
    up to ``PIPE_BUF`` reach a pipe whole, so lines never interleave mid-line."""
    pieces: list[bytes] = []
    start = 0
    while start < len(chunk):
        end = chunk.rfind(b"\n", start, start + limit) + 1
        if end <= start:  # one line longer than the limit
            end = chunk.find(b"\n", start) + 1 or len(chunk)
        pieces.append(chunk[start:end])
        start = end
    return pieces


class AccessLog:
    def __init__(self, fd: int = 2) -> None:
        self._fd = fd
        self._lines: list[bytes] = []
        self._size = 0
        self._dropped = 0
        self._flush_handle: asyncio.TimerHandle | None = None
        self._writer: _Writer | None = None
        self._times = _Timestamps()
        #: JSON lines written here rather than through ``logging`` (which then decides).
        self.direct = False
        self._logger = logging.getLogger(LOGGER)

    def configure(self) -> None:
        """Follow the logging configuration in force (call after ``configure_logging``): lines
        bypass ``logging`` only where it would write them as JSON at this level anyway."""
        self.direct = self._logger.isEnabledFor(logging.INFO) and json_logs_configured()

    def record(
        self,
        method: str,
        path: str,
        route: str,
        status: int,
        elapsed: float,
        client_ip: str,
        request_id: str,
    ) -> None:
        duration_ms = round(elapsed * 1000, 3)
        if not self.direct:
            self._logger.info(
                "%s %s %d",
                method,
                path,
                status,
                extra={
                    "method": method,
                    "path": path,
                    "route": route,
                    "status": status,
                    "duration_ms": duration_ms,
                    "client_ip": client_ip,
                },
            )
            return
        line = orjson.dumps(
            {
                "ts": self._times.now(),
                "level": "info",
                "logger": LOGGER,
                "msg": f"{method} {path} {status}",
                "request_id": request_id,
                "method": method,
                "path": path,
                "route": route,
                "status": status,
                "duration_ms": duration_ms,
                "client_ip": client_ip,
            },
            option=orjson.OPT_APPEND_NEWLINE,
        )
        writer = self._writer
        if writer is not None and writer.backlog > MAX_BACKLOG_BYTES:
            self._dropped += 1
            DROPPED.inc()
            return
        self._lines.append(line)
        self._size += len(line)
        if self._size >= FLUSH_BYTES:
            self.flush()
        elif self._flush_handle is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            self._flush_handle = loop.call_later(FLUSH_INTERVAL, self.flush)

    def flush(self) -> None:
        """Hand what is buffered to the writer thread (never blocks on the stream)."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if not self._lines and not self._dropped:
            return
        if self._dropped:
            notice = {
                "ts": self._times.now(),
                "level": "warning",
                "logger": LOGGER,
                "msg": f"{self._dropped} access log lines dropped: the log stream was too slow",
                "dropped": self._dropped,
            }
            self._lines.append(orjson.dumps(notice, option=orjson.OPT_APPEND_NEWLINE))
            self._dropped = 0
        chunk = b"".join(self._lines)
        self._lines.clear()
        self._size = 0
        if self._writer is None:
            self._writer = _Writer(self._fd)
            self._writer.start()
        self._writer.hand(chunk)

    def close(self, timeout: float = 5.0) -> None:
        """Write every buffered line, then stop the writer thread."""
        self.flush()
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.chunks.put(None)
            with contextlib.suppress(RuntimeError):
                writer.join(timeout)
