"""The ``kervan`` command: serve, migrate, worker, settings."""

from __future__ import annotations

import argparse
import asyncio
import inspect
import re
import sys
from collections.abc import Sequence
from typing import Any

from core.errors import KervanError
from service.logging import configure_logging, get_logger
from service.settings import Settings, SettingsError, load_settings
from service.settings_docs import NOTES

log = get_logger("kervan.cli")

SECRET_KEYS = ("cookie_secret", "admin_api_key", "metrics_token")


def _settings(overrides: dict[str, Any]) -> Settings:
    try:
        return load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except SettingsError as exc:
        print("kervan: invalid settings:", file=sys.stderr)
        for line in exc.lines:
            print(f"  {line}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_serve(args: argparse.Namespace) -> int:
    from granian import Granian
    from granian.constants import Interfaces, Loops

    settings = _settings(
        {"host": args.host, "port": args.port, "workers": args.workers, "threads": args.threads}
    )
    configure_logging(settings.log_level)
    if args.migrate:
        asyncio.run(_migrate(settings))
    server = Granian(
        "service.asgi:app_factory",
        factory=True,
        address=settings.host,
        port=settings.port,
        interface=Interfaces.ASGI,
        workers=settings.workers,
        runtime_threads=settings.threads,
        backlog=settings.backlog,
        loop=Loops.uvloop,
        log_enabled=True,
        respawn_failed_workers=True,
        # The same KERVAN_* environment reaches the workers; validation already passed here.
    )
    server.serve()
    return 0


async def _migrate(settings: Settings) -> None:
    from service.db import Database
    from service.db.migrate import migrate

    db = Database(settings.database_url)
    try:
        await migrate(db)
    finally:
        await db.dispose()


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = _settings({})
    configure_logging(settings.log_level)
    try:
        asyncio.run(_migrate(settings))
    except KervanError as exc:
        print(f"kervan migrate: {exc.message}", file=sys.stderr)
        return 1
    print("kervan migrate: schema is up to date", file=sys.stderr)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    settings = _settings({})
    configure_logging(settings.log_level)
    from service.worker_process import run_worker

    return run_worker(settings, args.queue or None)


def _comment_descriptions() -> dict[str, str]:
    """Fields documented by the comment lines right above them in ``service/settings.py``."""
    found: dict[str, str] = {}
    pending: list[str] = []
    for line in inspect.getsource(Settings).splitlines():
        stripped = line.strip()
        if stripped.startswith("# ---"):
            pending = []
        elif stripped.startswith("#"):
            pending.append(stripped.lstrip("#").strip())
        else:
            match = re.match(r"^    ([a-z_][a-z0-9_]*)\s*:", line)
            trailing = re.search(r"  # (?!noqa|type:)(.+)$", line)
            if match and (pending or trailing):
                found[match.group(1)] = " ".join([*pending, trailing.group(1) if trailing else ""])
            pending = []
    return found


def settings_table() -> str:
    """Every setting with its default, as the Markdown table the README carries."""
    comments = _comment_descriptions()
    rows = ["| Variable | Default | Description |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        if field.default_factory is not None:
            default: Any = field.default_factory()  # type: ignore[call-arg]
        else:
            default = field.default
        if isinstance(default, list):
            default = ",".join(str(v) for v in default)
        shown = "" if default is None else str(default)
        if name in SECRET_KEYS and shown:
            shown = "(development value)"
        description = field.description or comments.get(name) or NOTES.get(name, "")
        description = description.replace("|", "\\|")
        cell = f"`{shown}`" if shown else "(unset)"
        rows.append(f"| `KERVAN_{name.upper()}` | {cell} | {description} |")
    return "\n".join(rows)


def cmd_settings(args: argparse.Namespace) -> int:
    if args.table:
        print(settings_table())
        return 0
    settings = _settings({})
    for name, value in settings.model_dump(mode="json").items():
        shown = "***" if name in SECRET_KEYS and value else value
        print(f"KERVAN_{name.upper()}={shown}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kervan", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve the API with granian on uvloop")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int)
    serve.add_argument("--threads", type=int)
    serve.add_argument("--migrate", action="store_true", help="apply migrations first")
    serve.set_defaults(func=cmd_serve)

    migrate = sub.add_parser("migrate", help="apply database migrations")
    migrate.set_defaults(func=cmd_migrate)

    worker = sub.add_parser("worker", help="run outbound job handlers")
    worker.add_argument("--queue", action="append", help="a queue to work (repeatable)")
    worker.set_defaults(func=cmd_worker)

    show = sub.add_parser("settings", help="validate and print the effective settings")
    show.add_argument("--table", action="store_true", help="print every setting as Markdown")
    show.set_defaults(func=cmd_settings)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
