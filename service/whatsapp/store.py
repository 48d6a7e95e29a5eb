"""CRM writes used by the webhook and the send job. Every function runs inside the caller's
transaction (``conn``) so a webhook delivery or a send is applied entirely or not at all."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Select,
    and_,
    case,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from core.whatsapp.events import InboundMessage, StatusEvent
from core.whatsapp.status import MessageStatus, StatusState, apply_status
from service.db.tables.crm import (
    crm_contacts,
    crm_convos,
    crm_messages,
    crm_pending_statuses,
)
from service.db.types import from_timestamp
from service.db.upsert import upsert_stmt

CHANNEL_WHATSAPP = "whatsapp"
#: Rows per multi-row INSERT and ids per IN list: far below SQLite's 32766 bound parameters and
#: MariaDB's packet size even for the 1 KB texts of a large batch.
CHUNK = 500


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass(frozen=True)
class StoredInbound:
    message_id: int
    convo_id: int
    contact_id: int
    event: InboundMessage


@dataclass(frozen=True)
class StatusChange:
    message_id: int
    convo_id: int
    provider_id: str
    status: str
    previous: str


def open_key(contact_id: int, channel: str) -> str:
    return f"{contact_id}:{channel}"


def _latest(query: Select[Any], dialect: str) -> Select[Any]:
    """Reads rows a concurrent transaction may just have committed.

    On MariaDB (REPEATABLE READ) a plain SELECT after our upsert still sees the snapshot taken
    before the other delivery created the row, when the upsert itself changed nothing; a
    locking read sees the latest committed version. SQLite has one writer at a time.
    """
    return query.with_for_update(read=True) if dialect != "sqlite" else query


async def resolve_contacts(
    conn: AsyncConnection,
    dialect: str,
    names: dict[str, str | None],
    now: datetime,
    channel: str = CHANNEL_WHATSAPP,
) -> tuple[dict[str, int], dict[int, int]]:
    """``wa_id`` -> contact id for every given WhatsApp id, and contact id -> open conversation
    on ``channel`` for those that have one.

    Known contacts with their open conversations cost one SELECT for the whole batch; new ones
    are inserted with an upsert (a concurrent delivery may create the same contact), changed
    profile names are refreshed, and a customer who writes again after being soft-deleted is a
    live contact again.
    """
    wanted = list(names)
    open_convo = and_(
        crm_convos.c.contact_id == crm_contacts.c.id,
        crm_convos.c.channel == channel,
        crm_convos.c.open_key.is_not(None),
    )
    query = select(
        crm_contacts.c.id,
        crm_contacts.c.wa_id,
        crm_contacts.c.name,
        crm_contacts.c.deleted_at,
        crm_convos.c.id.label("convo_id"),
    ).select_from(crm_contacts.outerjoin(crm_convos, open_convo))
    found = {r.wa_id: r for r in await conn.execute(query.where(crm_contacts.c.wa_id.in_(wanted)))}
    missing = [wa_id for wa_id in wanted if wa_id not in found]
    if missing:
        rows = [
            {
                "wa_id": wa_id,
                "name": names[wa_id],
                "phone": wa_id[:32],
                "locale": "tr",
                "created_at": now,
                "updated_at": now,
            }
            for wa_id in missing
        ]
        await conn.execute(
            upsert_stmt(
                dialect,
                crm_contacts,
                rows,
                index_elements=["wa_id"],
                update_columns={"updated_at": lambda new: new("updated_at")},
            )
        )
        # Contacts only: a locking read joined to conversations would also lock index gaps of
        # crm_convos, where concurrent deliveries insert, and deadlock with them.
        fresh = select(
            crm_contacts.c.id,
            crm_contacts.c.wa_id,
            crm_contacts.c.name,
            crm_contacts.c.deleted_at,
            literal(None).label("convo_id"),
        ).where(crm_contacts.c.wa_id.in_(missing))
        created = await conn.execute(_latest(fresh, dialect))
        found.update({r.wa_id: r for r in created})
    for wa_id, row in found.items():
        name = names.get(wa_id)
        if (name and name != row.name) or row.deleted_at is not None:
            values: dict[str, Any] = {"updated_at": now, "deleted_at": None}
            if name:
                values["name"] = name
            await conn.execute(
                update(crm_contacts).where(crm_contacts.c.id == row.id).values(**values)
            )
    contacts = {wa_id: int(row.id) for wa_id, row in found.items()}
    convos = {int(row.id): int(row.convo_id) for row in found.values() if row.convo_id is not None}
    return contacts, convos


async def ensure_open_convos(
    conn: AsyncConnection,
    dialect: str,
    contact_ids: Iterable[int],
    channel: str,
    now: datetime,
    known: dict[int, int] | None = None,
) -> dict[int, int]:
    """contact id -> its open conversation on ``channel`` (opened when there is none);
    ``known`` are open conversations the caller already read."""
    result = dict(known or {})
    keys = {
        open_key(contact_id, channel): contact_id
        for contact_id in set(contact_ids)
        if contact_id not in result
    }
    if not keys:
        return result
    query = select(crm_convos.c.id, crm_convos.c.open_key)
    found = {
        r.open_key: int(r.id)
        for r in await conn.execute(query.where(crm_convos.c.open_key.in_(list(keys))))
    }
    missing = [key for key in keys if key not in found]
    if missing:
        rows = [
            {
                "contact_id": keys[key],
                "channel": channel,
                "status": "open",
                "open_key": key,
                "unread": 0,
                "created_at": now,
                "last_activity_at": now,
            }
            for key in missing
        ]
        await conn.execute(upsert_stmt(dialect, crm_convos, rows, index_elements=["open_key"]))
        created = await conn.execute(
            _latest(query.where(crm_convos.c.open_key.in_(missing)), dialect)
        )
        found.update({r.open_key: int(r.id) for r in created})
    result.update({contact_id: found[key] for key, contact_id in keys.items()})
    return result


async def existing_provider_ids(conn: AsyncConnection, ids: Iterable[str]) -> set[str]:
    wanted = sorted(set(ids))
    found: set[str] = set()
    for chunk in chunks(wanted):
        rows = await conn.execute(
            select(crm_messages.c.provider_id).where(crm_messages.c.provider_id.in_(chunk))
        )
        found.update(str(r[0]) for r in rows)
    return found


def _message_time(event: InboundMessage, now: datetime) -> datetime:
    if event.timestamp is None:
        return now
    # A clock-skewed or forged future timestamp must not hold the service window open.
    return min(from_timestamp(event.timestamp), now)


def _later(column: Any, value: datetime) -> Any:
    return case((or_(column.is_(None), column < value), value), else_=column)


@dataclass(frozen=True)
class InboundDelivery:
    """The inbound part of one webhook delivery, for :func:`save_inbound_many`."""

    messages: Sequence[InboundMessage]
    profiles: dict[str, str | None]
    #: When the delivery arrived: the latest time its messages may claim.
    received_at: datetime


async def save_inbound(
    conn: AsyncConnection,
    dialect: str,
    messages: Sequence[InboundMessage],
    profiles: dict[str, str | None],
    now: datetime,
) -> list[StoredInbound]:
    """Stores messages not seen before (WhatsApp redelivers) and returns the new ones."""
    [stored] = await save_inbound_many(
        conn, dialect, [InboundDelivery(messages, profiles, now)], now
    )
    return stored


async def save_inbound_many(
    conn: AsyncConnection, dialect: str, deliveries: Sequence[InboundDelivery], now: datetime
) -> list[list[StoredInbound]]:
    """:func:`save_inbound` for several deliveries at once, with the same result as storing them
    one after the other in this order: the new messages of each delivery.

    Every step is one statement for all of them (ids already stored, contacts, open
    conversations, the message rows, the conversation counters), so a group of deliveries costs
    about what one does.
    """
    seen = await existing_provider_ids(
        conn, (m.provider_id for delivery in deliveries for m in delivery.messages)
    )
    fresh: list[tuple[int, InboundMessage, datetime]] = []
    names: dict[str, str | None] = {}
    for index, delivery in enumerate(deliveries):
        for event in delivery.messages:
            if event.provider_id in seen:
                continue
            seen.add(event.provider_id)
            fresh.append((index, event, _message_time(event, delivery.received_at)))
            names[event.wa_id] = (
                event.profile_name or delivery.profiles.get(event.wa_id) or names.get(event.wa_id)
            )
    stored: list[list[StoredInbound]] = [[] for _ in deliveries]
    if not fresh:
        return stored
    contacts, open_convos = await resolve_contacts(conn, dialect, names, now)
    convos = await ensure_open_convos(
        conn, dialect, contacts.values(), CHANNEL_WHATSAPP, now, known=open_convos
    )
    rows = [
        {
            "convo_id": convos[contacts[event.wa_id]],
            "direction": "in",
            "kind": event.kind,
            "body": event.body,
            "payload": event.payload(),
            "provider_id": event.provider_id,
            "reply_to": event.reply_to,
            "status": "received",
            "created_at": at,
            "marketing": False,
        }
        for _index, event, at in fresh
    ]
    # An executemany: SQLAlchemy sends it as multi-row INSERTs ("insertmanyvalues") from one
    # cached compiled statement. RETURNING names each row, whatever order it lists them in.
    returned = await conn.execute(
        insert(crm_messages).returning(crm_messages.c.id, crm_messages.c.provider_id), rows
    )
    ids = {str(r.provider_id): int(r.id) for r in returned}
    activity: dict[int, tuple[int, datetime]] = {}
    for index, event, at in fresh:
        contact_id = contacts[event.wa_id]
        convo_id = convos[contact_id]
        stored[index].append(StoredInbound(ids[event.provider_id], convo_id, contact_id, event))
        count, latest = activity.get(convo_id, (0, at))
        activity[convo_id] = (count + 1, max(latest, at))
    await _count_inbound(conn, activity)
    return stored


async def _count_inbound(conn: AsyncConnection, activity: dict[int, tuple[int, datetime]]) -> None:
    """Adds new inbound messages to their conversations' unread counters and activity times.

    One UPDATE per distinct (count, latest time) pair, each over all its conversations: in a
    burst most conversations got one message in the same second, so that is one or a few
    statements, each compiled once (an expanding IN), where a CASE per conversation would cost
    more to build than to run. Rows are taken in id order within each statement.
    """
    groups: dict[tuple[int, datetime], list[int]] = {}
    for convo_id in sorted(activity):
        groups.setdefault(activity[convo_id], []).append(convo_id)
    for (count, latest), ids in groups.items():
        where = crm_convos.c.id == ids[0] if len(ids) == 1 else crm_convos.c.id.in_(ids)
        await conn.execute(
            update(crm_convos)
            .where(where)
            .values(
                unread=crm_convos.c.unread + count,
                last_inbound_at=_later(crm_convos.c.last_inbound_at, latest),
                last_activity_at=_later(crm_convos.c.last_activity_at, latest),
            )
        )


_STAMP_COLUMNS = ("sent", "delivered", "read", "failed")


def _state_of(row: Any) -> StatusState:
    def ts(name: str) -> float | None:
        value = getattr(row, f"{name}_at")
        return None if value is None else float(value.timestamp())

    return StatusState(
        status=row.status,
        sent_at=ts("sent"),
        delivered_at=ts("delivered"),
        read_at=ts("read"),
        failed_at=ts("failed"),
    )


def _transition(
    row: Any, incoming: MessageStatus, at: datetime, errors: list[dict[str, Any]] | None
) -> tuple[dict[str, Any], StatusChange | None]:
    """The column values ``incoming`` changes on ``row``, and the status change it makes."""
    before = _state_of(row)
    after = apply_status(before, incoming, at.timestamp())
    values: dict[str, Any] = {}
    if after.status != before.status:
        values["status"] = after.status
    for name in _STAMP_COLUMNS:
        if getattr(after, f"{name}_at") != getattr(before, f"{name}_at"):
            values[f"{name}_at"] = from_timestamp(getattr(after, f"{name}_at"))
    if incoming == "failed" and errors:
        values["error"] = {"action": "failed", "errors": errors}
    if after.status == before.status:
        return values, None
    return values, StatusChange(row.id, row.convo_id, row.provider_id, after.status, before.status)


async def _apply_to_row(
    conn: AsyncConnection,
    row: Any,
    incoming: MessageStatus,
    at: datetime,
    errors: list[dict[str, Any]] | None,
) -> StatusChange | None:
    values, change = _transition(row, incoming, at, errors)
    if values:
        await conn.execute(update(crm_messages).where(crm_messages.c.id == row.id).values(**values))
    return change


_ROW_COLUMNS = (
    crm_messages.c.id,
    crm_messages.c.convo_id,
    crm_messages.c.provider_id,
    crm_messages.c.status,
    crm_messages.c.sent_at,
    crm_messages.c.delivered_at,
    crm_messages.c.read_at,
    crm_messages.c.failed_at,
)


@dataclass
class _Tracked:
    """An outbound message's status columns as the statuses of a group leave them."""

    id: int
    convo_id: int
    provider_id: str
    status: MessageStatus
    sent_at: datetime | None
    delivered_at: datetime | None
    read_at: datetime | None
    failed_at: datetime | None


async def apply_statuses(
    conn: AsyncConnection, statuses: Sequence[StatusEvent], now: datetime
) -> tuple[list[StatusChange], int]:
    """Applies each status to its outbound message, or parks it until the message is known.

    Returns the status changes and how many statuses were parked.
    """
    [result] = await apply_statuses_many(conn, [(statuses, now)])
    return result


async def apply_statuses_many(
    conn: AsyncConnection, deliveries: Sequence[tuple[Sequence[StatusEvent], datetime]]
) -> list[tuple[list[StatusChange], int]]:
    """:func:`apply_statuses` for several deliveries (their statuses and arrival times) at once,
    with the same result as applying them one after the other in this order.

    One locking read finds every message concerned; each status is applied in order to the
    message's state as the statuses before it left it, and each changed message is written
    once, with the sum of its changes.
    """
    wanted = sorted({event.provider_id for statuses, _ in deliveries for event in statuses})
    tracked: dict[str, _Tracked] = {}
    for chunk in chunks(wanted):
        # A locking read: a send job committing one of these provider ids right now is waited
        # for rather than missed (the status would otherwise stay parked).
        query = select(*_ROW_COLUMNS).where(
            crm_messages.c.provider_id.in_(chunk), crm_messages.c.direction == "out"
        )
        for row in await conn.execute(_latest(query, conn.dialect.name)):
            tracked[str(row.provider_id)] = _Tracked(**row._asdict())
    results: list[tuple[list[StatusChange], int]] = []
    parked_rows: list[dict[str, Any]] = []
    writes: dict[int, dict[str, Any]] = {}
    for statuses, received_at in deliveries:
        changes: list[StatusChange] = []
        parked = 0
        for event in statuses:
            at = from_timestamp(event.timestamp) if event.timestamp is not None else received_at
            errors = [e.as_dict() for e in event.errors] or None
            row = tracked.get(event.provider_id)
            if row is None:
                parked_rows.append(
                    {
                        "provider_id": event.provider_id,
                        "status": event.status,
                        "status_at": at,
                        "errors": errors,
                        "received_at": received_at,
                    }
                )
                parked += 1
                continue
            values, change = _transition(row, event.status, at, errors)
            if values:
                writes.setdefault(row.id, {}).update(values)
                for name, value in values.items():
                    if name != "error":
                        setattr(row, name, value)
            if change is not None:
                changes.append(change)
        results.append((changes, parked))
    if parked_rows:
        await conn.execute(insert(crm_pending_statuses), parked_rows)
    for message_id in sorted(writes):  # id order, as every writer of these rows locks them
        await conn.execute(
            update(crm_messages).where(crm_messages.c.id == message_id).values(**writes[message_id])
        )
    return results


async def record_sent(
    conn: AsyncConnection, message_id: int, provider_id: str, now: datetime
) -> list[StatusChange]:
    """The Graph API accepted the message: keep its id, mark it sent, apply parked statuses."""
    await conn.execute(
        update(crm_messages)
        .where(crm_messages.c.id == message_id)
        .values(provider_id=provider_id, error=None)
    )
    changes: list[StatusChange] = []
    parked_query = (
        select(crm_pending_statuses)
        .where(crm_pending_statuses.c.provider_id == provider_id)
        .order_by(crm_pending_statuses.c.id)
    )
    parked = (await conn.execute(_latest(parked_query, conn.dialect.name))).all()
    pending: list[tuple[MessageStatus, datetime, Any]] = [("sent", now, None)]
    pending += [(p.status, p.status_at, p.errors) for p in parked]
    for status, at, errors in pending:
        row = (
            await conn.execute(select(*_ROW_COLUMNS).where(crm_messages.c.id == message_id))
        ).first()
        assert row is not None
        change = await _apply_to_row(conn, row, status, at, errors)
        if change is not None:
            changes.append(change)
    if parked:
        await conn.execute(
            delete(crm_pending_statuses).where(crm_pending_statuses.c.provider_id == provider_id)
        )
    return changes


async def record_failure(
    conn: AsyncConnection, message_id: int, error: dict[str, Any], now: datetime
) -> StatusChange | None:
    row = (await conn.execute(select(*_ROW_COLUMNS).where(crm_messages.c.id == message_id))).first()
    if row is None:
        return None
    await conn.execute(
        update(crm_messages).where(crm_messages.c.id == message_id).values(error=error)
    )
    return await _apply_to_row(conn, row, "failed", now, None)


async def count_rows(conn: AsyncConnection, table: Any) -> int:
    return int(await conn.scalar(select(func.count()).select_from(table)) or 0)
