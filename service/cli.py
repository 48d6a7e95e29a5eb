"""The ``kervan`` command: serve, migrate, worker, settings, admin, site, person, audit."""

from __future__ import annotations

import argparse
import asyncio
import inspect
import re
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from core.errors import KervanError, NotFound, StorageError, ValidationFailed
from core.i18n import SUPPORTED_LOCALES
from service.logging import configure_logging, get_logger
from service.settings import SETTINGS_PARTS, Settings, SettingsError, load_settings
from service.settings_docs import NOTES

if TYPE_CHECKING:
    from core.audit.chain import ChainReport

log = get_logger("kervan.cli")

SECRET_KEYS = ("cookie_secret", "admin_api_key", "metrics_token")
ALL_INTERFACES = ("", "0.0.0.0", "::")  # noqa: S104 - recognised in settings, never bound here


def _settings(overrides: dict[str, Any]) -> Settings:
    try:
        return load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except SettingsError as exc:
        print("kervan: invalid settings:", file=sys.stderr)
        for line in exc.lines:
            print(f"  {line}", file=sys.stderr)
        raise SystemExit(2) from None


def _configure_logging(settings: Settings) -> None:
    configure_logging(settings.log_level, settings.log_format, env=settings.env)


def _mask_url(url: str) -> str:
    """``url`` with its password (userinfo or ``?password=``) replaced by ``***``."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if parts.password is not None:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.partition(":")[0]
        netloc = f"{user}:***@{hostport}"
    query = urlencode(
        [(k, "***" if k.lower() == "password" else v) for k, v in parse_qsl(parts.query)],
        safe="*",
    )
    # Not urlunsplit: it drops the empty authority of unix:///path.
    shown = f"{parts.scheme}://{netloc}{parts.path}"
    return shown + (f"?{query}" if query else "") + (f"#{parts.fragment}" if parts.fragment else "")


def database_label(settings: Settings) -> str:
    """The database kind and where it is, password masked: ``sqlite ./var/kervan.db``."""
    from sqlalchemy.engine import make_url

    url = make_url(settings.database_url)
    kind = url.get_backend_name()
    if kind == "sqlite":
        in_memory = url.database in (None, "", ":memory:")
        return "sqlite in memory" if in_memory else f"sqlite {url.database}"
    shown = url.set(drivername=kind).render_as_string(hide_password=True)
    return f"{kind} {shown.partition('://')[2]}"


def queue_backend(settings: Settings) -> str:
    """The queue backend ``auto`` resolves to: Redis Streams with Redis, else the SQL outbox."""
    if settings.queue_backend == "redis" or (
        settings.queue_backend == "auto" and settings.redis_url is not None
    ):
        return "redis"
    return "sql"


def worker_embedded(settings: Settings) -> bool:
    """Whether the outbound worker runs inside the API process (embedded backends by default)."""
    chosen = settings.queue_embedded_worker
    return settings.embedded if chosen is None else chosen


def serve_url(settings: Settings) -> str:
    host = settings.host
    if host in ALL_INTERFACES:
        host = "::1" if host == "::" else "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}"


def serve_banner(settings: Settings) -> str:
    """What ``kervan serve`` prints before granian starts: where, on what, and the links."""
    from service.version import VERSION

    url = serve_url(settings)
    processes = f"{settings.workers} worker process{'es' if settings.workers > 1 else ''}"
    threads = f"{settings.threads} thread{'s' if settings.threads > 1 else ''}"
    where = " (all interfaces)" if settings.host in ALL_INTERFACES else ""
    if settings.redis_url is None:
        backends = "in-process (embedded; set KERVAN_REDIS_URL to use Redis)"
    else:
        backends = f"redis {_mask_url(settings.redis_url)} (namespace {settings.redis_namespace})"
    queue = {"sql": "SQL outbox in the database", "redis": "Redis Streams"}[queue_backend(settings)]
    if worker_embedded(settings):
        each = "each API process" if settings.workers > 1 else "the API process"
        worker = f"embedded (runs inside {each})"
    else:
        worker = "not embedded (run `kervan worker` beside the API)"
    lines = [
        f"kervan {VERSION} serving on {url}{where}, {processes}, {threads}, env {settings.env}",
        f"  database  {database_label(settings)}",
        f"  backends  {backends}",
        f"  queue     {queue}",
        f"  worker    {worker}",
        f"  docs      {url}/docs",
        f"  metrics   {url}/metrics",
        f"  health    {url}/health",
        f"  ready     {url}/ready",
    ]
    return "\n".join(lines)


def http_options(settings: Settings) -> dict[str, Any]:
    """granian's HTTP options: HTTP/1 only, with the header timeout from the settings.

    granian's default (``auto``) serves a connection through hyper-util's protocol detection,
    which waits for the first bytes to tell HTTP/1 from HTTP/2 with no timer at all: a peer
    that connects and sends nothing holds its socket (and a file descriptor) until it leaves.
    hyper's HTTP/1 header timeout starts when the connection is accepted and again after each
    response, so with HTTP/1 only, idle, slow and silent connections are all closed after the
    timeout. Nothing is lost: browsers speak HTTP/2 only over TLS, which a proxy in front
    terminates, and WebSockets are HTTP/1.1 upgrades.
    """
    from granian.constants import HTTPModes
    from granian.http import HTTP1Settings

    # granian takes whole milliseconds, 1 to 60,000 (the setting allows at most 60 s).
    timeout_ms = max(1, round(settings.http_header_timeout_seconds * 1000))
    return {
        "http": HTTPModes.http1,
        "http1_settings": HTTP1Settings(header_read_timeout=timeout_ms),
    }


def cmd_serve(args: argparse.Namespace) -> int:
    from granian import Granian
    from granian.constants import Interfaces, Loops

    settings = _settings(
        {"host": args.host, "port": args.port, "workers": args.workers, "threads": args.threads}
    )
    _configure_logging(settings)
    if args.migrate and _run_migrate(settings) != 0:
        return 1
    print(serve_banner(settings), file=sys.stderr, flush=True)
    rsgi = settings.server_interface == "rsgi"
    server = Granian(
        "service.rsgi:app_factory" if rsgi else "service.asgi:app_factory",
        factory=True,
        address=settings.host,
        port=settings.port,
        interface=Interfaces.RSGI if rsgi else Interfaces.ASGI,
        workers=settings.workers,
        runtime_threads=settings.threads,
        backlog=settings.backlog,
        loop=Loops.uvloop,
        log_enabled=True,
        respawn_failed_workers=True,
        **http_options(settings),
        # The same KERVAN_* environment reaches the workers; validation already passed here.
    )
    server.serve()
    return 0


def _ancestors(script: Any, heads: Sequence[str]) -> set[str]:
    """Every revision at or below ``heads``: what a database at those heads has applied."""

    def below(value: str | Sequence[str] | None) -> tuple[str, ...]:
        if value is None:
            return ()
        return (value,) if isinstance(value, str) else tuple(value)

    seen: set[str] = set()
    stack = list(heads)
    while stack:
        rev = script.get_revision(stack.pop())
        if rev is None or rev.revision in seen:
            continue
        seen.add(rev.revision)
        stack.extend(below(rev.down_revision) + below(rev.dependencies))
    return seen


async def _current_heads(db: Any) -> tuple[str, ...] | None:
    """The revisions the database is at; None when it cannot be asked (migrate will say why)."""
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy.exc import SQLAlchemyError

    def read(sync_conn: Any) -> tuple[str, ...]:
        return tuple(MigrationContext.configure(sync_conn).get_current_heads())

    try:
        async with db.engine.connect() as conn:
            heads: tuple[str, ...] = await conn.run_sync(read)
    except SQLAlchemyError:
        return None
    return heads


async def _migrate(settings: Settings) -> list[str] | None:
    """Upgrade to every head; the revisions applied, oldest first (None: not known)."""
    from alembic.script import ScriptDirectory

    from service.db import Database
    from service.db.migrate import alembic_config, migrate

    db = Database(settings.database_url)
    try:
        before = await _current_heads(db)
        await migrate(db)
    finally:
        await db.dispose()
    if before is None:
        return None
    script = ScriptDirectory.from_config(alembic_config())
    done = _ancestors(script, before)
    applied = [rev.revision for rev in script.walk_revisions("base", "heads")]
    return [rev for rev in reversed(applied) if rev not in done]


def migrate_summary(settings: Settings, applied: list[str] | None) -> str:
    """``kervan migrate: sqlite ./var/kervan.db: applied 0001_a ... 0009_b (8 revisions)``."""
    where = f"kervan migrate: {database_label(settings)}"
    if not applied:
        return f"{where}: schema is up to date"
    names = sorted(applied)
    shown = ", ".join(names) if len(names) <= 3 else f"{names[0]} ... {names[-1]}"
    count = f"{len(names)} revision{'s' if len(names) > 1 else ''}"
    return f"{where}: applied {shown} ({count})"


def _run_migrate(settings: Settings) -> int:
    try:
        applied = asyncio.run(_migrate(settings))
    except KervanError as exc:
        print(f"kervan migrate: {exc.message}", file=sys.stderr)
        return 1
    print(migrate_summary(settings, applied), file=sys.stderr)
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = _settings({})
    _configure_logging(settings)
    return _run_migrate(settings)


def cmd_worker(args: argparse.Namespace) -> int:
    settings = _settings({})
    _configure_logging(settings)
    from service.worker_process import run_worker

    return run_worker(settings, args.queue or None)


async def _admin_command(settings: Settings, args: argparse.Namespace) -> str:
    """Run one ``kervan admin`` command against the database; the line to print."""
    from service.admins import accounts
    from service.db import Database
    from service.db.types import utcnow

    db = Database(settings.database_url)
    try:
        if args.admin_command == "add":
            admin = await accounts.add_admin(
                db,
                name=args.name,
                telegram_chat_id=args.telegram_chat_id,
                language=args.language or settings.admin_default_language,
                now=utcnow(),
                actor="cli",
            )
            return f"added admin {admin.name} (id {admin.id}, language {admin.language})"
        if args.admin_command == "disable":
            found = await accounts.disable_admin(db, args.name, now=utcnow(), actor="cli")
            if found is None:
                raise NotFound(f"no admin named {args.name!r}")
            return f"disabled admin {found.name}: its sessions end at their next request"
        rows = [("NAME", "LANGUAGE", "TELEGRAM CHAT", "STATUS", "CREATED")]
        for admin in await accounts.list_admins(db):
            status = "active" if admin.disabled_at is None else "disabled"
            rows.append(
                (
                    admin.name,
                    admin.language,
                    admin.telegram_chat_id,
                    status,
                    admin.created_at.strftime("%Y-%m-%d %H:%M UTC"),
                )
            )
        if len(rows) == 1:
            return "no admins yet: kervan admin add NAME --telegram-chat-id ID"
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        return "\n".join(
            "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in rows
        )
    finally:
        await db.dispose()


def cmd_admin(args: argparse.Namespace) -> int:
    settings = _settings({})
    _configure_logging(settings)
    try:
        print(asyncio.run(_admin_command(settings, args)))
    except ValidationFailed as exc:
        print(f"kervan admin {args.admin_command}: {exc.message}", file=sys.stderr)
        return 2
    except StorageError as exc:
        hint = "(has `kervan migrate` run on this database?)"
        print(f"kervan admin {args.admin_command}: {exc.message} {hint}", file=sys.stderr)
        return 1
    except KervanError as exc:
        print(f"kervan admin {args.admin_command}: {exc.message}", file=sys.stderr)
        return 1
    return 0


async def _site_command(settings: Settings, args: argparse.Namespace) -> str:
    """Run one ``kervan site`` command against the database; the text to print."""
    from service.db import Database
    from service.db.types import utcnow
    from service.tracking.access import Actor, scope_for
    from service.tracking.members import invite_member
    from service.tracking.sites_manage import add_site, list_sites

    db = Database(settings.database_url)
    try:
        if args.site_command == "add":
            async with db.begin() as conn:
                site = await add_site(
                    conn,
                    name=args.name,
                    domains=args.domain,
                    currency=args.currency,
                    time_zone=args.time_zone,
                    config=None,
                    now=utcnow(),
                    actor="cli",
                )
                line = f"added site {site.name!r} (id {site.id}, key {site.public_key})"
                if args.owner:
                    _site, scope = await scope_for(conn, Actor("admin", "cli"), site.id)
                    invited = await invite_member(
                        conn,
                        scope,
                        email=args.owner,
                        role="owner",
                        language=settings.admin_default_language,
                        now=utcnow(),
                    )
                    line += f", owner {invited.member.person.email}"
            return line
        rows: list[tuple[str, ...]] = [("ID", "NAME", "KEY", "CURRENCY", "TIME ZONE", "DOMAINS")]
        async with db.connect() as conn:
            after = 0
            while page := await list_sites(conn, after=after, limit=500):
                rows += [
                    (str(s.id), s.name, s.public_key, s.currency, s.time_zone, ",".join(s.domains))
                    for s in page
                ]
                after = page[-1].id
        if len(rows) == 1:
            return "no sites yet: kervan site add NAME --domain HOST --currency TRY"
        return _table(rows)
    finally:
        await db.dispose()


async def _person_command(settings: Settings, args: argparse.Namespace) -> str:
    """Run one ``kervan person`` command against the database; the line to print."""
    from service.db import Database
    from service.db.types import utcnow
    from service.tracking.people import add_person

    db = Database(settings.database_url)
    try:
        async with db.begin() as conn:
            person = await add_person(
                conn,
                email=args.email,
                name=args.name or args.email.partition("@")[0],
                language=args.language or settings.admin_default_language,
                telegram_chat_id=args.telegram_chat_id,
                now=utcnow(),
                actor="cli",
            )
        return f"added person {person.email} (id {person.id}, language {person.language})"
    finally:
        await db.dispose()


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def _run_tracking_command(
    command: str,
    run: Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, str]],
    args: argparse.Namespace,
) -> int:
    settings = _settings({})
    _configure_logging(settings)
    name = f"kervan {command} {getattr(args, command + '_command')}"
    try:
        print(asyncio.run(run(settings, args)))
    except ValidationFailed as exc:
        print(f"{name}: {exc.message}", file=sys.stderr)
        return 2
    except StorageError as exc:
        hint = "(has `kervan migrate` run on this database?)"
        print(f"{name}: {exc.message} {hint}", file=sys.stderr)
        return 1
    except KervanError as exc:
        print(f"{name}: {exc.message}", file=sys.stderr)
        return 1
    return 0


def cmd_site(args: argparse.Namespace) -> int:
    return _run_tracking_command("site", _site_command, args)


def cmd_person(args: argparse.Namespace) -> int:
    return _run_tracking_command("person", _person_command, args)


def _site_id(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"a site id is a positive integer, not {text!r}")
    return int(text)


def audit_report_line(report: ChainReport) -> str:
    """One chain's verification: ``site 12: ok, 40 records, head 40 3f2a...`` or the break."""
    where = "platform" if report.chain == 0 else f"site {report.chain}"
    if report.ok:
        return f"{where}: ok, {report.checked} records, head {report.head.seq} {report.head.hash}"
    broken = report.first_break
    assert broken is not None
    return f"{where}: BROKEN at seq {broken.seq} ({broken.reason}): {broken.detail}"


async def _audit_verify(settings: Settings, args: argparse.Namespace) -> list[ChainReport]:
    from service.audit.verify import verify
    from service.db import Database

    db = Database(settings.database_url)
    try:
        return await verify(db, site_id=args.site, platform=args.platform)
    finally:
        await db.dispose()


def cmd_audit(args: argparse.Namespace) -> int:
    """``kervan audit verify``: 0 when every chain checked is whole, 1 when one is broken."""
    settings = _settings({})
    _configure_logging(settings)
    try:
        reports = asyncio.run(_audit_verify(settings, args))
    except KervanError as exc:
        print(f"kervan audit verify: {exc.message}", file=sys.stderr)
        return 1
    if not reports:
        print("the audit log is empty")
    for report in reports:
        print(audit_report_line(report))
    return 0 if all(report.ok for report in reports) else 1


def _comment_descriptions() -> dict[str, str]:
    """Fields documented by the comment lines right above them (or trailing them) in the source
    of the settings parts (``service/settings.py`` and ``service/<feature>/settings.py``)."""
    found: dict[str, str] = {}
    for part in SETTINGS_PARTS:
        pending: list[str] = []
        for line in inspect.getsource(part).splitlines():
            stripped = line.strip()
            if stripped.startswith("# ---"):
                pending = []
            elif stripped.startswith("#"):
                pending.append(stripped.lstrip("#").strip())
            else:
                match = re.match(r"^    ([a-z_][a-z0-9_]*)\s*:", line)
                trailing = re.search(r"  # (?!noqa|type:)(.+)$", line)
                if match and (pending or trailing):
                    text = trailing.group(1) if trailing else ""
                    found[match.group(1)] = " ".join([*pending, text])
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

    admin = sub.add_parser("admin", help="manage admin accounts (OTP login over Telegram)")
    admin_sub = admin.add_subparsers(dest="admin_command", required=True)
    add = admin_sub.add_parser("add", help="add an admin")
    add.add_argument("name", help="2-64 characters of a-z, 0-9, '.', '_', '-'")
    add.add_argument("--telegram-chat-id", required=True, help="the chat their codes go to")
    add.add_argument(
        "--language", choices=SUPPORTED_LOCALES, help="of their messages (default: settings)"
    )
    admin_sub.add_parser("list", help="list the admins")
    disable = admin_sub.add_parser("disable", help="disable an admin and end their sessions")
    disable.add_argument("name")
    admin.set_defaults(func=cmd_admin)

    site = sub.add_parser("site", help="manage tracked sites (tenants)")
    site_sub = site.add_subparsers(dest="site_command", required=True)
    site_add = site_sub.add_parser("add", help="add a site")
    site_add.add_argument("name")
    site_add.add_argument(
        "--domain", action="append", required=True, help="a host its pages come from (repeatable)"
    )
    site_add.add_argument("--currency", required=True, help="ISO 4217, e.g. TRY")
    site_add.add_argument("--time-zone", default="Europe/Istanbul", help="IANA time zone")
    site_add.add_argument("--owner", help="e-mail of its first owner (created when new)")
    site_sub.add_parser("list", help="list the sites")
    site.set_defaults(func=cmd_site)

    person = sub.add_parser("person", help="manage people who sign in to sites' dashboards")
    person_sub = person.add_subparsers(dest="person_command", required=True)
    person_add = person_sub.add_parser("add", help="add a person")
    person_add.add_argument("email")
    person_add.add_argument("--name", help="shown to other members (default: the address)")
    person_add.add_argument(
        "--language", choices=SUPPORTED_LOCALES, help="of their messages (default: settings)"
    )
    person_add.add_argument("--telegram-chat-id", help="codes go there (else by e-mail)")
    person.set_defaults(func=cmd_person)

    audit = sub.add_parser("audit", help="the audit log's hash chains")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    audit_verify = audit_sub.add_parser(
        "verify", help="walk the chains and report each one's first broken link (exit 1)"
    )
    which = audit_verify.add_mutually_exclusive_group()
    which.add_argument(
        "--site", type=_site_id, help="only this site's chain (default: every chain)"
    )
    which.add_argument("--platform", action="store_true", help="only the platform's chain")
    audit.set_defaults(func=cmd_audit)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
