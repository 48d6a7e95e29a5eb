"""The intent lifecycle: editors and owners move an intent between ``pending``, ``junk`` and
``cancelled``, or seal it as a sale (``confirmed``, with amount and currency).

- Every statement carries the caller's site (``where_site``): another site's intent id finds no
  row and is 404, like an id that does not exist (and a soft-deleted intent).
- A sealed intent is final here: its status is not changed again (409 ``intent_sealed``), and
  sealing it again is idempotent for the same amount and currency (the answer is the sealed
  intent, nothing changes) and 409 ``already_sealed`` for another amount.
- ``on_sealed(conn, scope, intent)`` runs inside the seal's transaction, once per intent: the
  Google Ads upload (the next issue) enqueues its job there, so that the job exists exactly when
  the seal commits.
- Each change is an audit row (``intent.status_changed``, ``intent.sealed``, subject
  ``site:<id>``) with the status before and after.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import and_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from core.errors import NotFound, ValidationFailed
from service.ads import sealing as ads_sealing
from service.audit import record_audit
from service.db.tables.tracking import track_intents
from service.errors import ApiError
from service.tracking.access import require_edit
from service.tracking.scope import SiteScope, where_site

IntentStatus = Literal["pending", "confirmed", "junk", "cancelled"]
#: What ``PATCH`` may set; ``confirmed`` only comes with a seal (amount and currency).
SETTABLE_STATUSES = ("pending", "junk", "cancelled")
MAX_AMOUNT = Decimal("999999999999.99")  # Numeric(14, 2)
RULE_AMOUNT = "an amount is more than 0"


@dataclass(frozen=True, slots=True)
class Intent:
    """An intent row as the lifecycle sees it (every column); the API shows intents as the
    dashboard does (``service.tracking.dashboard_ledger.one_intent``)."""

    row: Any

    @property
    def id(self) -> int:
        return int(self.row.id)

    @property
    def status(self) -> str:
        return str(self.row.status)


def _live(scope: SiteScope, intent_id: int) -> Any:
    return and_(
        where_site(track_intents, scope),
        track_intents.c.id == intent_id,
        track_intents.c.deleted_at.is_(None),
    )


async def get_intent(conn: AsyncConnection, scope: SiteScope, intent_id: int) -> Intent:
    row = (await conn.execute(select(track_intents).where(_live(scope, intent_id)))).first()
    if row is None:
        raise NotFound("no such intent")
    return Intent(row)


async def on_sealed(conn: AsyncConnection, scope: SiteScope, intent: Intent) -> None:
    """Runs inside the seal's transaction, once per sealed intent: the offline-conversion
    upload (``service/ads``) records the intent's upload state and makes sure a job will send
    it, so both exist if and only if the seal commits."""
    await ads_sealing.on_sealed(conn, scope, intent)


def check_amount(amount: Decimal) -> Decimal:
    if not amount.is_finite() or amount <= 0:
        raise ValidationFailed(RULE_AMOUNT)
    if amount > MAX_AMOUNT:
        raise ValidationFailed(f"an amount is at most {MAX_AMOUNT}")
    cents = amount.quantize(Decimal("0.01"))
    if cents != amount:
        raise ValidationFailed("an amount has at most two decimals")
    return cents


async def set_status(
    conn: AsyncConnection,
    scope: SiteScope,
    intent_id: int,
    status: str,
    *,
    now: datetime,
) -> Intent:
    """Move an intent to ``pending``, ``junk`` or ``cancelled`` (editors, owners, admins)."""
    require_edit(scope)
    if status not in SETTABLE_STATUSES:
        raise ValidationFailed(
            f"status is one of {', '.join(SETTABLE_STATUSES)} (a sale is sealed, not set)"
        )
    intent = await get_intent(conn, scope, intent_id)
    if intent.status == status:
        return intent
    if intent.status == "confirmed":
        raise ApiError(
            409, "intent_sealed", "a sealed intent keeps its status", {"status": intent.status}
        )
    # Conditional on the status read: a concurrent seal in between makes this change nothing.
    result = await conn.execute(
        update(track_intents)
        .where(_live(scope, intent_id), track_intents.c.status == intent.status)
        .values(status=status, updated_at=now)
    )
    if result.rowcount != 1:
        raise ApiError(409, "intent_changed", "the intent changed meanwhile; read it again")
    await _audit(conn, scope, "intent.status_changed", intent_id, intent.status, status, now)
    return await get_intent(conn, scope, intent_id)


async def seal(
    conn: AsyncConnection,
    scope: SiteScope,
    intent_id: int,
    *,
    amount: Decimal,
    currency: str | None,
    now: datetime,
) -> tuple[Intent, bool]:
    """Confirm an intent as a sale: the sealed intent, and whether this call sealed it (False:
    it already was, for the same amount and currency)."""
    require_edit(scope)
    # The intent first: an id that names nothing here is 404 whatever the amount says.
    intent = await get_intent(conn, scope, intent_id)
    value = check_amount(amount)
    money = (currency or scope.currency).upper()
    if intent.status == "confirmed":
        return _already(intent, value, money), False
    result = await conn.execute(
        update(track_intents)
        .where(_live(scope, intent_id), track_intents.c.status != "confirmed")
        .values(
            status="confirmed",
            amount=value,
            currency=money,
            sealed_at=now,
            sealed_by=scope.actor[:64],
            updated_at=now,
        )
    )
    sealed = await get_intent(conn, scope, intent_id)
    if result.rowcount != 1:  # sealed by a concurrent request in between
        return _already(sealed, value, money), False
    await _audit(
        conn,
        scope,
        "intent.sealed",
        intent_id,
        intent.status,
        "confirmed",
        now,
        amount=f"{value:.2f}",
        currency=money,
    )
    await on_sealed(conn, scope, sealed)
    return sealed, True


def _already(intent: Intent, amount: Decimal, currency: str) -> Intent:
    row = intent.row
    if Decimal(row.amount) == amount and row.currency == currency:
        return intent
    raise ApiError(
        409,
        "already_sealed",
        "the intent is sealed with another amount or currency",
        {"amount": f"{Decimal(row.amount):.2f}", "currency": row.currency},
    )


async def _audit(
    conn: AsyncConnection,
    scope: SiteScope,
    action: str,
    intent_id: int,
    before: str,
    after: str,
    now: datetime,
    **extra: Any,
) -> None:
    await record_audit(
        conn,
        actor=scope.actor,
        action=action,
        subject=f"site:{scope.site_id}",
        details={"intent": intent_id, "from": before, "to": after, **extra},
        ts=now,
        site_id=scope.site_id,
        # What changed on the intent: its status, and a seal's amount and currency.
        before={"status": before},
        after={"status": after, **extra},
    )
