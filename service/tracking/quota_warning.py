"""Quota warnings to a site's owners: early (the configured share of a limit, 80 % by default)
and used up (100 %), one per site, month, kind (events, intents) and level.

The batch whose usage add takes a count to a level raises the level on the usage row
(``quota.raise_warned``, a conditional update on the row the add holds locked) and, in the
same transaction, enqueues the notices on the outbound queue (transactional outbox: on Redis
the SQL outbox relays them after commit). So a batch that rolls back sends nothing, and of
concurrent batches, in any number of processes, exactly one sends each warning. A batch that
jumps past both levels sends only the used-up warning.

Each owner gets an e-mail (when e-mail is on) in their language, and a Telegram message to
their own chat (the one their login codes go to) when they have one and the bot is on. The
job keys name the site, month, kind, level, owner and channel, so a warning is never queued
twice even if it were raised twice.

This process remembers the levels it saw already raised, so that a site past a level pays the
conditional update once per process and month, not once per batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from core.i18n import Locale, resolve_locale
from core.tracking.quota import USED_UP, end_of_month, warning_level
from service.db.tables.tracking import people, site_members, sites
from service.logging import get_logger
from service.queue.base import JobQueue
from service.settings import Settings
from service.telegram.jobs import enqueue_telegram_message
from service.tracking import quota
from service.tracking.mail import enqueue_mail, mail_enabled
from service.tracking.quota import KINDS, Counts, Kind, Limits
from service.tracking.quota_texts import quota_warning_text
from service.tracking.scope import SiteScope

log = get_logger("kervan.tracking.quota")


@dataclass(frozen=True, slots=True)
class Owner:
    id: int
    email: str
    name: str
    language: Locale
    telegram_chat_id: str | None


@dataclass(slots=True)
class Warned:
    """A warning this transaction raised (counted once it commits)."""

    kind: Kind
    level: int
    #: Notices queued per channel (``email``, ``telegram``).
    notices: dict[str, int] = field(default_factory=dict)


def level_name(level: int) -> str:
    """The metric label of a level: ``early`` or ``used_up`` (the early percent is a setting)."""
    return "used_up" if level >= USED_UP else "early"


class QuotaWarner:
    def __init__(self, settings: Settings, queue: Callable[[], JobQueue | None]) -> None:
        self.settings = settings
        self._queue = queue
        #: ``(site, kind) -> level`` seen already raised in ``_month``.
        self._known: dict[tuple[int, Kind], int] = {}
        self._month = ""

    async def check(
        self,
        conn: AsyncConnection,
        scope: SiteScope,
        month: str,
        counts: Counts,
        limits: Limits,
    ) -> list[Warned]:
        """After a batch's usage add (in its transaction): raise and send the warnings its
        counts reached."""
        if month != self._month:
            self._known.clear()
            self._month = month
        raised: list[Warned] = []
        percent = self.settings.tracking_quota_warning_percent
        for kind in KINDS:
            used = counts.events if kind == "events" else counts.intents
            if used is None:
                continue  # not read back: this batch added none of this kind
            limit = limits.of(kind)
            level = warning_level(used, limit, percent)
            if level == 0 or self._known.get((scope.site_id, kind), 0) >= level:
                continue
            if not await quota.raise_warned(conn, scope, month, kind, level):
                self._known[(scope.site_id, kind)] = level
                continue
            notices = await self._send(conn, scope, month, kind, level, used, limit)
            raised.append(Warned(kind, level, notices))
        return raised

    async def _send(
        self,
        conn: AsyncConnection,
        scope: SiteScope,
        month: str,
        kind: Kind,
        level: int,
        used: int,
        limit: int,
    ) -> dict[str, int]:
        queue = self._queue()
        notices: dict[str, int] = {}
        if queue is None:
            log.warning("a quota warning has no queue to go through", extra={"site": scope.site_id})
            return notices
        settings = self.settings
        by_mail = mail_enabled(settings)
        by_telegram = settings.telegram_bot_token is not None
        if not by_mail and not by_telegram:
            return notices
        site_name = (
            await conn.execute(select(sites.c.name).where(sites.c.id == scope.site_id))
        ).scalar_one()
        reset_at = end_of_month(month)
        for owner in await owners(conn, scope):
            subject, text = quota_warning_text(
                language=owner.language,
                kind=kind,
                level=level,
                site=str(site_name),
                name=owner.name,
                used=used,
                limit=limit,
                month=month,
                reset_at=reset_at,
            )
            key = f"quota:{scope.site_id}:{month}:{kind}:{level}:{owner.id}"
            if by_mail and await enqueue_mail(
                queue, to=owner.email, subject=subject, text=text, key=key, conn=conn
            ):
                notices["email"] = notices.get("email", 0) + 1
            if (
                by_telegram
                and owner.telegram_chat_id
                and await enqueue_telegram_message(
                    queue, chat_id=owner.telegram_chat_id, text=text, key=key, conn=conn
                )
            ):
                notices["telegram"] = notices.get("telegram", 0) + 1
        return notices


async def owners(conn: AsyncConnection, scope: SiteScope) -> list[Owner]:
    """The site's owners who can sign in (disabled people get no warnings)."""
    rows = await conn.execute(
        select(
            people.c.id, people.c.email, people.c.name, people.c.language, people.c.telegram_chat_id
        )
        .join(site_members, site_members.c.person_id == people.c.id)
        .where(
            site_members.c.site_id == scope.site_id,
            site_members.c.role == "owner",
            people.c.disabled_at.is_(None),
        )
        .order_by(people.c.id)
    )
    return [
        Owner(
            int(r.id),
            str(r.email),
            str(r.name),
            resolve_locale(r.language),
            r.telegram_chat_id or None,
        )
        for r in rows
    ]
