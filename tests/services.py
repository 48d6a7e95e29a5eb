"""What the suite does when a server or tool it needs is missing, and private servers of its own.

Two different situations, never confused:

* the server cannot be reached (or the tool is not installed): the tests that need it are
  skipped with the reason shown, or fail when ``KERVAN_REQUIRE_SERVICES=1`` (CI);
* the server answered but preparing it failed (creating or migrating the run's database): that
  is a bug or a broken server, so it is always an error, with the original exception chained.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pymysql
import pytest
import redis as sync_redis

from tests.settings import TEST_ENV


@dataclass(frozen=True)
class ServiceDown:
    """The server could not be reached at all."""

    what: str
    error: Exception


@dataclass(frozen=True)
class SetupFailed:
    """The server answered, but preparing it for the run failed."""

    what: str
    step: str
    error: Exception


class ServiceSetupError(RuntimeError):
    """Raised (from the original exception) by every test that needs a server whose set-up
    failed: an error, never a skip."""


ServiceState = str | ServiceDown | SetupFailed


def unavailable(message: str, *, require: bool | None = None) -> NoReturn:
    """Skip with ``message``, or fail when services are required (KERVAN_REQUIRE_SERVICES=1)."""

    if TEST_ENV.require_services if require is None else require:
        pytest.fail(f"KERVAN_REQUIRE_SERVICES=1 and {message}", pytrace=False)
    pytest.skip(message)


def service_url(state: ServiceState, *, require: bool | None = None) -> str:
    """The URL of a prepared server, or the right refusal for a missing or broken one."""
    if isinstance(state, SetupFailed):
        raise ServiceSetupError(
            f"{state.what} is reachable but {state.step} failed: "
            f"{type(state.error).__name__}: {state.error}"
        ) from state.error
    if isinstance(state, ServiceDown):
        unavailable(
            f"{state.what} is unreachable ({state.error}); set KERVAN_TEST_* or start it",
            require=require,
        )
    return state


def require_tool(name: str, why: str, *, require: bool | None = None) -> str:
    """The path of an executable the tests need; missing = skipped (or failed in CI)."""
    found = shutil.which(name)
    if found is None:
        unavailable(f"the {name} executable is not installed ({why})", require=require)
    return found


# ---------------------------------------------------------------- MariaDB


def prepare_mariadb(
    params: dict[str, Any],
    name: str,
    url: str,
    migrate: Callable[[str], Exception | None],
    *,
    connect: Callable[..., Any] = pymysql.connect,
) -> tuple[ServiceState, bool]:
    """Create the run's database ``name`` (reached at ``url``) and migrate it.

    Returns the state for :func:`service_url` and whether the database was created (so the
    caller knows to drop it). ``migrate(url)`` returns the exception it met, or None.
    """
    try:
        conn = connect(**params)
    except Exception as exc:
        return ServiceDown("MariaDB", exc), False
    try:
        with conn.cursor() as cur:
            cur.execute(
                f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            )
    except Exception as exc:
        return SetupFailed("MariaDB", f"creating the database {name}", exc), False
    finally:
        conn.close()
    error = migrate(url)
    if error is not None:
        return SetupFailed("MariaDB", f"migrating the database {name}", error), True
    return url, True


def drop_mariadb(params: dict[str, Any], name: str) -> None:
    conn = pymysql.connect(**params)
    try:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    finally:
        conn.close()


# ---------------------------------------------------------------- a private Redis


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(url: str) -> bool:
    client = sync_redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
    try:
        return bool(client.ping())
    except sync_redis.RedisError:
        return False
    finally:
        client.close()


@contextmanager
def private_redis_server(
    folder: Path, *, start_timeout: float = 10.0, require: bool | None = None
) -> Iterator[str]:
    """A ``redis-server`` of the test's own on a free port, stopped on exit.

    For tests that act on the whole server (``CLIENT PAUSE``, ``CLIENT KILL``): on the shared
    server they would stall or cut off every other run using it.
    """
    binary = require_tool(
        "redis-server", "a private Redis for tests that pause or kill clients", require=require
    )
    last_log = ""
    tries = 5
    for _ in range(tries):
        port = free_port()
        log = folder / f"redis-{port}.log"
        process = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(folder),
                "--logfile",
                str(log),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        url = f"redis://127.0.0.1:{port}/0"
        deadline = time.monotonic() + start_timeout
        while process.poll() is None and time.monotonic() < deadline:
            if _answers(url):
                break
            time.sleep(0.02)
        else:
            # Exited (the port was taken meanwhile) or never answered: try another port.
            _stop(process)
            last_log = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            continue
        try:
            yield url
        finally:
            _stop(process)
        return
    raise RuntimeError(f"a private redis-server did not start in {tries} tries:\n{last_log}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
