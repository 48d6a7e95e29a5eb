"""Arbitrary (signed) JSON to the webhook: never a 500, never a partial write, nothing invented.

The oracle is independent of the parser: the generator builds each notification from parts it
chose to be well-formed or broken, and records what a well-formed part must leave behind (the
message ids, senders, kinds and texts; the statuses). The test checks the stored rows against
that record, never calling ``core.whatsapp.parse``. The rules the record follows are the
contract of a Cloud API notification:

* a body that is not ``{"object": "whatsapp_business_account", "entry": [...]}`` is refused
  (400) and only logged raw;
* inside it, only changes ``{"field": "messages", "value": {...}}`` of entries that are objects
  count; anything else is skipped without failing the delivery;
* a message needs an ``id`` and a ``from`` that are non-blank strings (surrounding whitespace
  is trimmed) of at most 191 and 64 characters; a status needs such an ``id`` and one of
  sent/delivered/read/failed; other messages and statuses are skipped;
* a message id already stored (earlier in the delivery or before) is a duplicate, stored once;
* statuses for ids with no outbound message are parked in ``crm_pending_statuses``.

Hypothesis drives a synchronous test, so the app runs on an event loop in a helper thread for
the whole test and each example is submitted to it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from core.clock import ManualClock
from service.db.tables.crm import (
    crm_contacts,
    crm_convos,
    crm_messages,
    crm_pending_statuses,
    wa_webhook_events,
)
from service.settings import Settings
from tests.whatsapp.conftest import START, post_webhook, runtime_of
from tests.whatsapp.dbutil import count, rows

T = TypeVar("T")

WABA = "whatsapp_business_account"
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
JSON = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=12,
)
NOT_OBJECT = JSON.filter(lambda v: not isinstance(v, dict))
NOT_LIST = JSON.filter(lambda v: not isinstance(v, list))
NOT_STRING = JSON.filter(lambda v: not isinstance(v, str))
MISSING = object()  # a key left out


def mostly(
    good: st.SearchStrategy[T], *broken: st.SearchStrategy[T], one_in: int = 4
) -> st.SearchStrategy[T]:
    """``good``, except one time in ``one_in`` one of the ``broken`` forms."""
    return st.integers(min_value=1, max_value=one_in).flatmap(
        lambda n: st.one_of(*broken) if n == one_in else good
    )


class _Unchecked:
    def __repr__(self) -> str:
        return "UNCHECKED"


UNCHECKED: Any = _Unchecked()  # the generator put arbitrary JSON there: no expectation


@dataclass(frozen=True)
class Message:
    provider_id: str
    wa_id: str
    kind: str | _Unchecked
    body: str | _Unchecked | None


@dataclass(frozen=True)
class Sent:
    """What a generated notification must leave behind, recorded while generating it."""

    accepted: bool = True
    messages: tuple[Message, ...] = ()
    statuses: tuple[tuple[str, str], ...] = ()

    def __add__(self, other: Sent) -> Sent:
        return Sent(True, self.messages + other.messages, self.statuses + other.statuses)


NOTHING = Sent()
Part = tuple[Any, Sent]  # (the JSON put in the payload, what it must leave behind)


def _with(fields: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value is not MISSING}


# ids: (what is sent, what must be stored). Whitespace around a usable id is trimmed.
CORE_IDS = (
    st.sampled_from(["wamid.A", "wamid.a", "wamid.C", "y" * 191])
    | st.uuids().map(lambda u: f"wamid.{u.hex}")
    | st.text(min_size=1, max_size=10).filter(lambda s: s == s.strip())
)
PADDING = st.sampled_from(["", " ", "\t", " \n "])
GOOD_IDS = st.tuples(PADDING, CORE_IDS, PADDING).map(lambda t: (t[0] + t[1] + t[2], t[1]))
BAD_IDS = st.sampled_from([MISSING, "", "   ", "\t\n", "x" * 192, "x" * 200]) | NOT_STRING
GOOD_FROM = st.sampled_from(
    [
        ("905321234567", "905321234567"),
        ("491701234567", "491701234567"),
        (" 4917012 ", "4917012"),
        ("4" * 64, "4" * 64),
    ]
)
BAD_FROM = st.sampled_from([MISSING, "", "  ", "9" * 65]) | NOT_STRING
# (type sent, kind stored); a type kervan does not know, or no usable type, is stored "unknown".
TYPES = st.sampled_from(
    [
        ("text", "text"),
        ("image", "image"),
        ("interactive", "interactive"),
        ("reaction", "reaction"),
        ("location", "location"),
        ("zzz", "unknown"),
        (MISSING, "unknown"),
    ]
) | NOT_STRING.map(lambda v: (v, "unknown"))
STATUS_NAMES = st.sampled_from(["sent", "delivered", "read", "failed"])
BAD_STATUS_NAMES = st.sampled_from([MISSING, "deleted", "", "SENT", " read"]) | NOT_STRING


@st.composite
def good_message(draw: st.DrawFn) -> Part:
    raw_id, stored_id = draw(GOOD_IDS)
    raw_from, stored_from = draw(GOOD_FROM)
    raw_type, kind = draw(TYPES | st.text(max_size=12).map(lambda t: (t, UNCHECKED)))
    text = draw(
        st.sampled_from([MISSING])
        | st.text(max_size=20).map(lambda b: {"body": b})
        | JSON.map(lambda b: {"body": b})
    )
    if raw_type == "text" and text is MISSING:
        body: Any = None
    elif raw_type == "text" and isinstance(text, dict) and isinstance(text["body"], str):
        body = text["body"]
    else:
        body = UNCHECKED
    message = _with(
        {
            "id": raw_id,
            "from": raw_from,
            "type": raw_type,
            "timestamp": draw(st.sampled_from(["1700000100", "0", "99999999999999"]) | JSON),
            "text": text,
            "context": draw(st.sampled_from([MISSING]) | JSON),
        }
    )
    return message, Sent(messages=(Message(stored_id, stored_from, kind, body),))


@st.composite
def broken_message(draw: st.DrawFn) -> Part:
    good, _ = draw(good_message())
    spoiled = draw(
        st.one_of(
            NOT_OBJECT,
            BAD_IDS.map(lambda bad: _with({**good, "id": bad})),
            BAD_FROM.map(lambda bad: _with({**good, "from": bad})),
            st.dictionaries(st.text(max_size=6).filter(lambda k: k != "id"), JSON, max_size=4),
        )
    )
    return spoiled, NOTHING


@st.composite
def good_status(draw: st.DrawFn) -> Part:
    raw_id, stored_id = draw(GOOD_IDS)
    name = draw(STATUS_NAMES)
    status = {"id": raw_id, "status": name, "timestamp": draw(JSON), "errors": draw(JSON)}
    return status, Sent(statuses=((stored_id, name),))


@st.composite
def broken_status(draw: st.DrawFn) -> Part:
    good, _ = draw(good_status())
    spoiled = draw(
        st.one_of(
            NOT_OBJECT,
            BAD_IDS.map(lambda bad: _with({**good, "id": bad})),
            BAD_STATUS_NAMES.map(lambda bad: _with({**good, "status": bad})),
        )
    )
    return spoiled, NOTHING


def parts_list(
    part: st.SearchStrategy[Part], max_size: int, min_size: int = 0
) -> st.SearchStrategy[Part]:
    """A JSON array of parts (what it leaves is the sum of theirs) or, sometimes, not an array."""
    as_list = st.lists(part, min_size=min_size, max_size=max_size).map(
        lambda items: ([p for p, _ in items], sum((s for _, s in items), NOTHING))
    )
    return mostly(as_list, NOT_LIST.map(lambda v: (v, NOTHING)), one_in=8)


@st.composite
def good_value(draw: st.DrawFn) -> Part:
    messages, sent_messages = draw(parts_list(mostly(good_message(), broken_message()), 3, 1))
    statuses, sent_statuses = draw(parts_list(mostly(good_status(), broken_status()), 2))
    contacts = draw(
        st.lists(
            st.fixed_dictionaries(
                {"wa_id": st.sampled_from(["905321234567"]) | JSON, "profile": JSON}
            ),
            max_size=2,
        )
        | JSON
    )
    value = {"contacts": contacts, "messages": messages, "statuses": statuses}
    return value, sent_messages + sent_statuses


@st.composite
def change(draw: st.DrawFn) -> Part:
    value, sent = draw(good_value())
    other_fields = st.sampled_from(["statuses", "Messages", "", "message_template_status_update"])
    return draw(
        mostly(
            st.just(({"field": "messages", "value": value}, sent)),
            NOT_OBJECT.map(lambda v: (v, NOTHING)),
            # Another field: its value is ignored even though it holds messages.
            (other_fields | NOT_STRING).map(lambda f: ({"field": f, "value": value}, NOTHING)),
            st.just(({"value": value}, NOTHING)),
            NOT_OBJECT.map(lambda v: ({"field": "messages", "value": v}, NOTHING)),
            one_in=6,
        )
    )


@st.composite
def entry(draw: st.DrawFn) -> Part:
    changes, sent = draw(parts_list(change(), 2, 1))
    return draw(
        mostly(
            st.just(({"id": "1", "changes": changes}, sent)),
            NOT_OBJECT.map(lambda v: (v, NOTHING)),
            one_in=8,
        )
    )


REFUSED = Sent(accepted=False)


@st.composite
def notification(draw: st.DrawFn) -> Part:
    entries = draw(st.lists(entry(), min_size=1, max_size=2))
    listed = [e for e, _ in entries]
    sent = sum((s for _, s in entries), NOTHING)
    wrong_objects = st.sampled_from(["page", "", "WHATSAPP_BUSINESS_ACCOUNT"]) | NOT_STRING
    return draw(
        mostly(
            st.just(({"object": WABA, "entry": listed}, sent)),
            NOT_OBJECT.map(lambda v: (v, REFUSED)),
            st.dictionaries(st.text(max_size=6).filter(lambda k: k != "object"), JSON).map(
                lambda v: (v, REFUSED)
            ),
            wrong_objects.map(lambda o: ({"object": o, "entry": listed}, REFUSED)),
            NOT_LIST.map(lambda v: ({"object": WABA, "entry": v}, REFUSED)),
            st.just(({"object": WABA}, REFUSED)),
        )
    )


class LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


@pytest.fixture
def app_in_thread(
    wa_settings: Callable[..., Settings],
    make_client: Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]],
) -> Iterator[tuple[LoopThread, httpx.AsyncClient]]:
    runner = LoopThread()
    manager = make_client(wa_settings(), clock=ManualClock(START + 3600))
    client = runner.run(manager.__aenter__())
    try:
        yield runner, client
    finally:
        runner.run(manager.__aexit__(None, None, None))
        runner.close()


@dataclass(frozen=True)
class Snapshot:
    events: int
    inbound: dict[str, tuple[str, str, str | None]]  # provider id -> (wa_id, kind, body)
    last_pending_id: int


async def _snapshot(client: httpx.AsyncClient) -> Snapshot:
    db = runtime_of(client).db
    query = (
        select(crm_messages.c.provider_id, crm_contacts.c.wa_id, crm_messages.c.kind)
        .add_columns(crm_messages.c.body)
        .join(crm_convos, crm_convos.c.id == crm_messages.c.convo_id)
        .join(crm_contacts, crm_contacts.c.id == crm_convos.c.contact_id)
        .where(crm_messages.c.direction == "in")
    )
    async with db.connect() as conn:
        inbound = {
            str(row.provider_id): (str(row.wa_id), str(row.kind), row.body)
            for row in await conn.execute(query)
        }
    pending = await rows(db, crm_pending_statuses)
    return Snapshot(await count(db, wa_webhook_events), inbound, pending[-1].id if pending else 0)


async def _parked_since(client: httpx.AsyncClient, after_id: int) -> list[tuple[str, str]]:
    db = runtime_of(client).db
    parked = await rows(db, crm_pending_statuses, crm_pending_statuses.c.id > after_id)
    return [(str(row.provider_id), str(row.status)) for row in parked]


async def _last_event(client: httpx.AsyncClient) -> Any:
    return (await rows(runtime_of(client).db, wa_webhook_events))[-1]


def _first_occurrences(messages: tuple[Message, ...]) -> dict[str, Message]:
    first: dict[str, Message] = {}
    for message in messages:
        first.setdefault(message.provider_id, message)
    return first


def _at_the_limits() -> Part:
    """Ids exactly as long as allowed (and one longer), padded ones, and a repeated id: always
    tried, whatever the generator happens to draw."""
    longest, too_long = "L" * 191, "L" * 192
    messages = [
        {"id": f" {longest}\t", "from": "4" * 64, "type": "text", "text": {"body": "Grüße"}},
        {"id": too_long, "from": "905321234567", "type": "text", "text": {"body": "x"}},
        {"id": "wamid.limit", "from": "5" * 65, "type": "text", "text": {"body": "x"}},
        {"id": "wamid.limit", "from": "905321234567", "type": "image"},
        {"id": "wamid.limit", "from": "491701234567", "type": "text"},
    ]
    statuses = [
        {"id": longest, "status": "read"},
        {"id": too_long, "status": "read"},
        {"id": " wamid.limit ", "status": "Delivered"},
        {"id": " wamid.limit ", "status": "delivered"},
    ]
    value = {"messages": messages, "statuses": statuses}
    payload = {
        "object": WABA,
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": value}]}],
    }
    sent = Sent(
        messages=(
            Message(longest, "4" * 64, "text", "Grüße"),
            Message("wamid.limit", "905321234567", "image", UNCHECKED),
            Message("wamid.limit", "491701234567", "text", None),
        ),
        statuses=((longest, "read"), ("wamid.limit", "delivered")),
    )
    return payload, sent


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(generated=notification())
@example(generated=_at_the_limits())
def test_arbitrary_json_never_500_and_never_partial(
    app_in_thread: tuple[LoopThread, httpx.AsyncClient], generated: Part
) -> None:
    payload, sent = generated
    runner, client = app_in_thread
    before = runner.run(_snapshot(client))
    response = runner.run(post_webhook(client, payload))
    after = runner.run(_snapshot(client))
    logged = runner.run(_last_event(client))
    parked = runner.run(_parked_since(client, before.last_pending_id))
    assert after.events == before.events + 1  # every signed delivery is logged raw
    if not sent.accepted:
        event("HTTP 400")
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "invalid_payload"
        assert logged.state == "rejected"
        assert after.inbound == before.inbound
        assert parked == []
        return
    first = _first_occurrences(sent.messages)
    new = {pid: m for pid, m in first.items() if pid not in before.inbound}
    event(f"HTTP 200, new messages: {len(new)}, statuses: {len(sent.statuses)}")
    assert response.status_code == 200, response.text
    # Exactly the delivery's new messages are stored, each once, and nothing else.
    assert set(after.inbound) - set(before.inbound) == set(new)
    assert {pid: after.inbound[pid] for pid in before.inbound} == before.inbound
    ack = response.json()
    assert (ack["messages"], ack["duplicates"]) == (len(new), len(sent.messages) - len(new))
    for pid, message in new.items():
        wa_id, kind, body = after.inbound[pid]
        assert wa_id == message.wa_id, pid
        if message.kind is not UNCHECKED:
            assert kind == message.kind, pid
        if message.body is not UNCHECKED:
            assert body == message.body, pid
    # No outbound messages exist here: every usable status is parked, in order.
    assert parked == list(sent.statuses)
    assert (logged.state, logged.messages, logged.statuses) == (
        "processed",
        len(new),
        len(sent.statuses),
    )


async def test_odd_bodies_are_client_errors(client: httpx.AsyncClient) -> None:
    for body in (orjson.dumps({"a": "\u0000\U0001f600" * 50}), b"{}" * 1000):
        response = await post_webhook(client, body)
        assert response.status_code == 400
