"""The consent API's operations: each reads or changes consent in its own transaction.

``service/routes/consent.py`` maps HTTP onto these (after ``authorize_subject``); other features
change consent inside their own transactions through ``service.consent.store`` with the
runtime's ``ConsentPolicy``. Answers are JSON-ready bodies of the ``service.consent.schemas``
models.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncConnection

from core.clock import Clock
from core.consent.chain import ChainHead, verify_chain
from core.consent.model import ConsentState, purposes_from_json
from core.consent.subject_proof import subject_proof
from service.audit import record_audit
from service.cache.aside import CacheAside
from service.consent import export, store
from service.consent.export import ExportFile, ExportFormat, Period, Verification
from service.consent.metrics import CONSENT_CHAIN_BREAKS
from service.consent.policy import ConsentPolicy
from service.consent.subject_access import SubjectCookie, issue_cookie
from service.consent.views import state_body
from service.consent.writes import write
from service.db import Database

Choices = Mapping[str, Literal["granted", "denied"]]
#: How long a subject's state stays cached without a write (writes drop it at once).
STATE_CACHE_SECONDS = 300.0
# A subject's full chain is verified on each events listing; beyond this, use the export.
VERIFY_MAX_EVENTS = 20_000
ANONYMOUS_PREFIX = "a-"


def _tag(subject: str) -> str:
    return f"consent:{subject}"


def state_json(state: ConsentState) -> dict[str, Any]:
    return {
        "subject": state.subject,
        "region": state.region,
        "purposes": state.purposes_json(),
        "updated_at": state.updated_at,
        "seq": state.seq,
        "head_hash": state.head_hash,
    }


def state_from_json(data: Mapping[str, Any]) -> ConsentState:
    return ConsentState(
        subject=data["subject"],
        region=data["region"],
        purposes=purposes_from_json(data["purposes"]),
        updated_at=data["updated_at"],
        seq=data["seq"],
        head_hash=data["head_hash"],
    )


@dataclass(frozen=True, slots=True)
class MintedSubject:
    body: dict[str, Any]
    cookie: SubjectCookie


class ConsentFacility:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        policy: ConsentPolicy,
        *,
        secure_cookies: bool,
        cache: CacheAside | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.policy = policy
        self.secure_cookies = secure_cookies
        self.cache = cache

    async def state(self, subject: str) -> dict[str, Any]:
        return state_body(await self.current(subject), self.policy, self.clock.now())

    async def current(self, subject: str) -> ConsentState:
        """The subject's recorded state, through the cache (consent is read far more often
        than written: the support call-back gate, ads uploads, banners). Every write drops it;
        expiry is computed by the reader at read time, so a cached state is never stale."""

        async def load() -> dict[str, Any]:
            async with self.db.connect() as conn:
                return state_json(await store.load_state(conn, subject))

        if self.cache is None:
            return state_from_json(await load())
        found = await self.cache.get_or_load(
            "consent_state", subject, load, ttl=STATE_CACHE_SECONDS, tags=[_tag(subject)]
        )
        return state_from_json(found)

    async def _changed(self, subject: str) -> None:
        if self.cache is not None:
            await self.cache.invalidate(_tag(subject))

    def mint(self) -> MintedSubject:
        """A fresh anonymous subject: its empty state, its proof and the cookie carrying it."""
        subject = ANONYMOUS_PREFIX + secrets.token_urlsafe(16)
        body = state_body(ConsentState(subject), self.policy, self.clock.now())
        body["subject_proof"] = subject_proof(subject, self.policy.subject_keys[0])
        return MintedSubject(body, issue_cookie(subject, self.policy, secure=self.secure_cookies))

    def proof(self, subject: str) -> dict[str, Any]:
        return {
            "subject": subject,
            "subject_proof": subject_proof(subject, self.policy.subject_keys[0]),
        }

    async def record(
        self,
        subject: str,
        choices: Choices,
        *,
        source: str,
        banner_version: str | None = None,
        region: str | None = None,
    ) -> dict[str, Any]:
        now = self.clock.now()

        async def change(conn: AsyncConnection) -> ConsentState:
            return await store.record(
                conn,
                subject,
                choices,
                source=source,
                now=now,
                banner_version=banner_version,
                region=region,
                policy=self.policy,
            )

        state = await write(self.db, change)
        await self._changed(subject)
        return state_body(state, self.policy, now)

    async def withdraw(self, subject: str, purposes: Sequence[str] | None) -> dict[str, Any]:
        now = self.clock.now()

        async def change(conn: AsyncConnection) -> ConsentState:
            return await store.withdraw(
                conn, subject, source="api", now=now, purposes=purposes, policy=self.policy
            )

        state = await write(self.db, change)
        await self._changed(subject)
        return state_body(state, self.policy, now)

    async def admin_record(
        self,
        actor: str,
        subject: str,
        choices: Choices,
        *,
        region: str | None = None,
        reason: str | None = None,
    ) -> dict[str, Any]:
        """Record on behalf of a subject; the audit entry commits with the change."""
        now = self.clock.now()

        async def change(conn: AsyncConnection) -> ConsentState:
            state = await store.record(
                conn, subject, choices, source="admin", now=now, region=region, policy=self.policy
            )
            await record_audit(
                conn,
                actor=actor,
                action="consent.record",
                subject=subject,
                details={"choices": dict(choices), "reason": reason},
            )
            return state

        state = await write(self.db, change)
        await self._changed(subject)
        return state_body(state, self.policy, now)

    async def events(self, subject: str, *, after_seq: int, limit: int) -> dict[str, Any]:
        """One page of a subject's events, with the verification of its whole chain."""
        async with self.db.connect() as conn:
            page = await store.list_events(conn, subject, after_seq=after_seq, limit=limit + 1)
            chain = await store.list_events(conn, subject, limit=VERIFY_MAX_EVENTS)
            state = await store.load_state(conn, subject)
        # The head check needs the whole chain; a longer one is verified by the period export.
        complete = len(chain) < VERIFY_MAX_EVENTS
        heads = {subject: ChainHead(state.seq, state.head_hash)} if state.seq and complete else {}
        report = verify_chain(chain, heads)
        if not report.ok:
            CONSENT_CHAIN_BREAKS.inc(len(report.breaks))
        more = len(page) > limit
        page = page[:limit]
        return {
            "subject": subject,
            "events": [event.to_json() for event in page],
            "next_after_seq": page[-1].seq if more else None,
            "verification": report.to_json(),
        }

    async def verify(self, period: Period) -> Verification:
        async with self.db.connect() as conn:
            verification = await export.verify_period(conn, period)
        if not verification.ok:
            CONSENT_CHAIN_BREAKS.inc(verification.break_count)
        return verification

    async def export(self, actor: str, period: Period, fmt: ExportFormat) -> ExportFile:
        """Audit the export, verify the period's chains, then stream its events."""
        async with self.db.begin() as conn:
            await record_audit(
                conn,
                actor=actor,
                action="consent.export",
                subject="consent_events",
                details={"from_ms": period.start_ms, "to_ms": period.end_ms, "format": fmt},
            )
        verification = await self.verify(period)
        return export.export_file(self.db, period, fmt, verification)
