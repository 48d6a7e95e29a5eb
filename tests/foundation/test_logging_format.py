"""KERVAN_LOG_FORMAT: JSON lines (unchanged) or short console lines, and the default rule."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from service.logging import (
    ConsoleFormatter,
    JsonFormatter,
    configure_logging,
    default_log_format,
    request_id_var,
)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    alembic = logging.getLogger("alembic").level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("alembic").setLevel(alembic)


def _emit(stream: io.StringIO, *, exc: bool = False) -> str:
    log = logging.getLogger("kervan.test")
    token = request_id_var.set("rid-1")
    try:
        if exc:
            try:
                raise ValueError("boom")
            except ValueError:
                log.exception("failed %s", "here", extra={"status": 500})
        else:
            log.info("GET %s %d", "/x", 200, extra={"status": 200, "path": "/x y"})
    finally:
        request_id_var.reset(token)
    return stream.getvalue()


def test_json_format_is_one_object_per_line() -> None:
    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    line = _emit(stream).strip()
    entry = json.loads(line)
    assert list(entry)[:4] == ["ts", "level", "logger", "msg"]
    assert entry["level"] == "info" and entry["logger"] == "kervan.test"
    assert entry["msg"] == "GET /x 200"
    assert entry["request_id"] == "rid-1"
    assert entry["status"] == 200 and entry["path"] == "/x y"


def test_json_is_still_the_default_of_configure_logging() -> None:
    stream = Terminal()
    configure_logging("INFO", stream=stream)  # the one-argument call keeps its JSON output
    assert isinstance(logging.getLogger().handlers[0].formatter, JsonFormatter)


def test_console_format_is_short_and_human() -> None:
    stream = io.StringIO()
    configure_logging("INFO", "console", stream=stream)
    line = _emit(stream).rstrip("\n")
    assert "\n" not in line and not line.startswith("{")
    clock, level, logger, rest = line.split(maxsplit=3)
    assert len(clock) == len("12:34:56.789") and clock[2] == ":" and clock[8] == "."
    assert (level, logger) == ("INFO", "kervan.test")
    message, _, extras = rest.partition("  ")
    assert message == "GET /x 200"
    assert extras == 'request_id=rid-1 status=200 path="/x y"'


def test_console_format_shows_the_traceback() -> None:
    stream = io.StringIO()
    configure_logging("INFO", "console", stream=stream)
    text = _emit(stream, exc=True)
    first, *rest = text.rstrip("\n").splitlines()
    assert " ERROR kervan.test  failed here  request_id=rid-1 status=500" in first
    assert rest[0].startswith("Traceback") and rest[-1] == "ValueError: boom"


@pytest.mark.parametrize(
    ("tty", "env", "expected"),
    [
        (True, "development", "console"),
        (True, "production", "json"),
        (False, "development", "json"),
        (False, "production", "json"),
    ],
)
def test_default_rule(tty: bool, env: str, expected: str) -> None:
    stream = Terminal() if tty else io.StringIO()
    assert default_log_format(env, stream) == expected
    configure_logging("INFO", None, env=env, stream=stream)
    formatter = logging.getLogger().handlers[0].formatter
    assert isinstance(formatter, ConsoleFormatter if expected == "console" else JsonFormatter)


def test_an_explicit_format_wins_over_the_terminal() -> None:
    configure_logging("INFO", "json", env="development", stream=Terminal())
    assert isinstance(logging.getLogger().handlers[0].formatter, JsonFormatter)
    configure_logging("INFO", "console", env="production", stream=io.StringIO())
    assert isinstance(logging.getLogger().handlers[0].formatter, ConsoleFormatter)


def test_alembic_is_quiet_unless_debug() -> None:
    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    logging.getLogger("alembic.runtime.plugins").info("setup plugin x")
    logging.getLogger("alembic.runtime.migration").warning("kept")
    assert "setup plugin" not in stream.getvalue() and "kept" in stream.getvalue()
    configure_logging("DEBUG", "json", stream=stream)
    logging.getLogger("alembic.runtime.plugins").info("setup plugin y")
    assert "setup plugin y" in stream.getvalue()
