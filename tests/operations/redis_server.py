"""A redis-server of the test's own that can be killed (SIGKILL) and started again on the same
port and folder, with the persistence options the test chooses (e.g. an append-only file)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import redis as sync_redis

from tests.services import free_port, require_tool

NO_PERSISTENCE = ("--save", "", "--appendonly", "no")
AOF_ALWAYS = ("--save", "", "--appendonly", "yes", "--appendfsync", "always")


class RedisServer:
    def __init__(self, folder: Path, options: Sequence[str] = NO_PERSISTENCE) -> None:
        self.binary = require_tool("redis-server", "a Redis the test kills and starts again")
        self.folder = folder
        self.options = list(options)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.folder / f"redis-{self.port}.log"

    def answers(self) -> bool:
        client = sync_redis.Redis.from_url(self.url, socket_timeout=0.5, socket_connect_timeout=0.5)
        try:
            return bool(client.ping())
        except sync_redis.RedisError:  # refused, or still loading its append-only file
            return False
        finally:
            client.close()

    def key_count(self) -> int:
        client = sync_redis.Redis.from_url(self.url, socket_timeout=5)
        try:
            return int(client.dbsize())
        finally:
            client.close()

    def start(self, timeout: float = 20.0) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.folder),
                "--logfile",
                str(self.log),
                *self.options,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            if self.answers():
                return
            time.sleep(0.02)
        self.kill()
        tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
        raise RuntimeError(f"redis-server did not start on port {self.port}:\n{tail}")

    def kill(self) -> None:
        """SIGKILL: no shutdown save, no flush; what is not on disk yet is gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@contextmanager
def redis_server(folder: Path, options: Sequence[str] = NO_PERSISTENCE) -> Iterator[RedisServer]:
    server = RedisServer(folder, options)
    server.start()
    try:
        yield server
    finally:
        server.kill()
