"""``kervan serve --migrate`` as an operator runs it: its own process group, a free port, JSON
log lines in a file the test reads."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson

from tests.cli_process import spawn_kervan

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 90.0


class Served:
    def __init__(self, folder: Path, port: int, **settings: str) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log = folder / f"kervan-{port}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("KERVAN_")}
        env.update(
            KERVAN_HOST="127.0.0.1",
            KERVAN_PORT=str(port),
            KERVAN_WORKERS="1",
            KERVAN_DATABASE_URL=f"sqlite+aiosqlite:///{folder / 'kervan.db'}",
            KERVAN_DATA_DIR=str(folder / "data"),
            KERVAN_LOG_FORMAT="json",
            KERVAN_LOG_LEVEL="INFO",
            PYTHONPATH=str(ROOT),
        )
        env.update({f"KERVAN_{key.upper()}": value for key, value in settings.items()})
        self._fh = self.log.open("ab")
        self.proc = spawn_kervan(["serve", "--migrate"], cwd=folder, env=env, log=self._fh)

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        with httpx.Client(base_url=self.url, timeout=2) as client:
            while time.monotonic() < deadline:
                assert self.proc.poll() is None, "kervan serve exited:\n" + self.tail()
                try:
                    if client.get("/health").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        raise AssertionError("kervan serve did not start:\n" + self.tail())

    def records(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far (granian's own lines are skipped)."""
        found = []
        for line in self.log.read_bytes().splitlines():
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(record, dict) and "logger" in record:
                found.append(record)
        return found

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._fh.close()


@contextmanager
def served(folder: Path, port: int, **settings: str) -> Iterator[Served]:
    server = Served(folder, port, **settings)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
