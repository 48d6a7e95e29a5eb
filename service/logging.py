"""Logs, one line per record, each carrying the current request id.

Two formats (``KERVAN_LOG_FORMAT``): ``json``, one object per line for log collectors, and
``console``, a short human-readable line for a terminal. Unset, the format follows where the
logs go: ``console`` when stderr is a terminal in development, ``json`` otherwise.
"""

from __future__ import annotations

import logging
import sys
import traceback
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

import orjson

LogFormat = Literal["json", "console"]

request_id_var: ContextVar[str | None] = ContextVar("kervan_request_id", default=None)

_STANDARD_ATTRS = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys() | {"message", "asctime"}
)
# Chatty below WARNING: granian's access log (kervan writes its own) and Alembic, which logs
# every plugin it loads and every revision it runs (``kervan migrate`` sums them up in a line).
# Alembic's lines come back at DEBUG.
_QUIET_ALWAYS = ("granian.access",)
_QUIET_UNLESS_DEBUG = ("alembic",)


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {
        key: value
        for key, value in record.__dict__.items()
        if key not in _STANDARD_ATTRS and not key.startswith("_")
    }


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id is not None:
            entry["request_id"] = request_id
        entry.update(_extras(record))
        if record.exc_info and record.exc_info[0] is not None:
            entry["exc_type"] = record.exc_info[0].__name__
            entry["exc"] = "".join(traceback.format_exception(*record.exc_info))
        return orjson.dumps(entry, default=str).decode()


def _console_value(value: Any) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    if text == "" or any(c.isspace() or c in '"=' for c in text):
        return orjson.dumps(text).decode()
    return text


class ConsoleFormatter(logging.Formatter):
    """``12:34:56.789 INFO  kervan.access  GET / 200  request_id=... status=200``."""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created).strftime("%H:%M:%S.%f")[:-3]
        line = f"{moment} {record.levelname:<5} {record.name}  {record.getMessage()}"
        extras: dict[str, Any] = {}
        request_id = request_id_var.get()
        if request_id is not None:
            extras["request_id"] = request_id
        extras.update(_extras(record))
        if extras:
            line += "  " + " ".join(f"{k}={_console_value(v)}" for k, v in extras.items())
        if record.exc_info and record.exc_info[0] is not None:
            line += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        return line


def default_log_format(env: str, stream: TextIO | None = None) -> LogFormat:
    """``console`` when ``stream`` (stderr) is a terminal and ``env`` is development."""
    stream = sys.stderr if stream is None else stream
    try:
        interactive = stream.isatty()
    except (AttributeError, ValueError):  # a closed or stand-in stream
        interactive = False
    return "console" if interactive and env == "development" else "json"


def configure_logging(
    level: str = "INFO",
    fmt: LogFormat | None = "json",
    *,
    env: str = "production",
    stream: TextIO | None = None,
) -> None:
    """Send every log record to ``stream`` (stderr) in ``fmt``.

    ``fmt=None`` chooses by ``default_log_format(env, stream)``, as ``KERVAN_LOG_FORMAT`` unset
    does: ``configure_logging(s.log_level, s.log_format, env=s.env)``.
    """
    stream = sys.stderr if stream is None else stream
    chosen = fmt if fmt is not None else default_log_format(env, stream)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(ConsoleFormatter() if chosen == "console" else JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in _QUIET_ALWAYS:
        logging.getLogger(name).setLevel(logging.WARNING)
    debug = root.getEffectiveLevel() <= logging.DEBUG
    for name in _QUIET_UNLESS_DEBUG:
        logging.getLogger(name).setLevel(logging.NOTSET if debug else logging.WARNING)


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name)
