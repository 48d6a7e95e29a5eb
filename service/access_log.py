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

import orjson
from prometheus_client import Counter

from native.edgepath import AccessLines, timestamp
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


class _Writer(threading.Thread):
    """Writes the chunks it is handed to a file descriptor, in order."""

    def __init__(self, fd: int, lines: AccessLines) -> None:
        super().__init__(name="kervan-access-log", daemon=True)
        self.fd = fd
        self.lines = lines
        self.chunks: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self.backlog = 0  # bytes handed over and not written yet
        self._lock = threading.Lock()

    def _count(self, change: int) -> None:
        with self._lock:
            self.backlog += change
            # Read by the request path before each line (a plain flag, no lock there).
            self.lines.dropping = self.backlog > MAX_BACKLOG_BYTES

    def hand(self, chunk: bytes) -> None:
        self._count(len(chunk))
        self.chunks.put(chunk)

    def run(self) -> None:
        while (chunk := self.chunks.get()) is not None:
            for piece in _line_aligned(chunk):
                if not self._write(piece):
                    # The stream is gone: count what could not be written, keep consuming.
                    DROPPED.inc(piece.count(b"\n"))
            self._count(-len(chunk))

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
        #: The buffered lines, and the line format (compiled: ``native/_edgepath.pyx``).
        self.lines = AccessLines()
        self._dropped = 0
        self._flush_handle: asyncio.TimerHandle | None = None
        self._writer: _Writer | None = None
        self._logger = logging.getLogger(LOGGER)

    @property
    def direct(self) -> bool:
        """JSON lines are written here rather than through ``logging`` (which then decides)."""
        return self.lines.direct

    @direct.setter
    def direct(self, value: bool) -> None:
        self.lines.direct = value

    def configure(self) -> None:
        """Follow the logging configuration in force (call after ``configure_logging``): lines
        bypass ``logging`` only where it would write them as JSON at this level anyway."""
        self.lines.direct = self._logger.isEnabledFor(logging.INFO) and json_logs_configured()

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
        lines = self.lines
        if not lines.direct:
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
                    "duration_ms": round(elapsed * 1000, 3),
                    "client_ip": client_ip,
                },
            )
            return
        if lines.dropping:
            self.drop()
            return
        size = lines.record(method, path, route, status, elapsed, client_ip, request_id)
        if not lines.scheduled or size >= FLUSH_BYTES:
            self.appended(size)

    def drop(self) -> None:
        """A line the writer is too far behind to take (counted, and said once it caught up)."""
        self._dropped += 1
        DROPPED.inc()

    def appended(self, size: int) -> None:
        """The buffer holds ``size`` bytes and no flush is scheduled, or it is large: flush
        now or in ``FLUSH_INTERVAL`` seconds."""
        if size >= FLUSH_BYTES:
            self.flush()
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self._flush_handle = loop.call_later(FLUSH_INTERVAL, self.flush)
        self.lines.scheduled = True

    def flush(self) -> None:
        """Hand what is buffered to the writer thread (never blocks on the stream)."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self.lines.scheduled = False
        if not self.lines.size and not self._dropped:
            return
        if self._dropped:
            notice = {
                "ts": timestamp(time.time_ns() // 1_000_000),
                "level": "warning",
                "logger": LOGGER,
                "msg": f"{self._dropped} access log lines dropped: the log stream was too slow",
                "dropped": self._dropped,
            }
            self.lines.add(orjson.dumps(notice, option=orjson.OPT_APPEND_NEWLINE))
            self._dropped = 0
        chunk = self.lines.take()
        if self._writer is None:
            self._writer = _Writer(self._fd, self.lines)
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
