"""The signaling store keeps one contract in-process and on the real Redis: each member's
messages taken in order and once, a bounded outbox per member that acknowledgements empty, the
call's states, and the server's own end of a call."""

from __future__ import annotations

import pytest

from service.backends import Backends
from service.rtc.signals import Signal, SignalStore
from service.rtc.stores import create_signal_store

ROOM = "cu_room1"
CALL = "call-0001"
A = "cu_room1"  # the customer (caller)
B = "ad_7"  # the admin (callee)
NOW = 1_000_000.0


@pytest.fixture
def store(backends: Backends) -> SignalStore:
    return create_signal_store(backends)


def msg(
    kind: str, sender: str, seq: int, *, call: str = CALL, relay: bool = True, **kw: object
) -> Signal:
    recipient = B if sender == A else A
    payload = b'{"type":"%s","n":%d}' % (kind.encode(), seq)
    return Signal(ROOM, call, sender, recipient, kind, seq, payload, relay, **kw)  # type: ignore[arg-type]


async def send(store: SignalStore, m: Signal, *, capacity: int = 8, now: float = NOW):  # type: ignore[no-untyped-def]
    return await store.signal(m, capacity=capacity, ttl=600, now=now, ring=30)


async def test_a_call_starts_and_messages_are_taken_in_order_once(store: SignalStore) -> None:
    started = await send(store, msg("call:start", A, 1))
    assert (started.status, started.received, started.seq, started.state, started.created) == (
        "accepted",
        1,
        1,
        "ringing",
        True,
    )
    again = await send(store, msg("call:start", A, 1))
    assert (again.status, again.received, again.created) == ("duplicate", 1, False)
    gap = await send(store, msg("rtc:description", A, 3))
    assert (gap.status, gap.received) == ("gap", 1)
    second = await send(store, msg("rtc:description", A, 2))
    assert (second.status, second.seq) == ("accepted", 2)
    third = await send(store, msg("rtc:description", A, 3))
    assert (third.status, third.seq) == ("accepted", 3)
    # The callee's own numbering is separate, and its messages go to the caller's outbox.
    accept = await send(store, msg("call:accept", B, 1))
    assert (accept.status, accept.seq, accept.state) == ("accepted", 1, "active")
    pending = await store.pending(ROOM, CALL, B, 0)
    assert [seq for seq, _ in pending] == [1, 2, 3]
    assert pending[1][1] == b'{"type":"rtc:description","n":2}'
    info = await store.info(ROOM, CALL)
    assert info is not None
    assert (info.caller, info.callee, info.state) == (A, B, "active")
    assert info.received == {A: 3, B: 1}
    assert info.sent == {B: 3, A: 1}
    assert info.accepted == NOW


async def test_acks_empty_the_outbox_cumulatively_and_selectively(store: SignalStore) -> None:
    for seq, kind in enumerate(
        ["call:start", "rtc:description", "rtc:ice:candidate", "rtc:ice:candidate"], 1
    ):
        assert (await send(store, msg(kind, A, seq))).status == "accepted"
    assert await store.ack(ROOM, CALL, B, 1, [3]) == 1
    assert [s for s, _ in await store.pending(ROOM, CALL, B, 0)] == [2, 4]
    # Never above what was handed out; a stale cumulative changes nothing.
    assert await store.ack(ROOM, CALL, B, 99, []) == 4
    assert await store.pending(ROOM, CALL, B, 0) == []
    assert await store.ack(ROOM, CALL, B, 2, []) == 4
    assert await store.ack(ROOM, "no-such-call", B, 2, []) == 0


async def test_a_full_outbox_refuses_until_acknowledged(store: SignalStore) -> None:
    assert (await send(store, msg("call:start", A, 1), capacity=2)).status == "accepted"
    assert (await send(store, msg("rtc:description", A, 2), capacity=2)).status == "accepted"
    full = await send(store, msg("rtc:ice:candidate", A, 3), capacity=2)
    assert (full.status, full.received) == ("overflow", 2)
    await store.ack(ROOM, CALL, B, 1, [])
    assert (await send(store, msg("rtc:ice:candidate", A, 3), capacity=2)).status == "accepted"


async def test_only_members_signal_and_one_call_per_room(store: SignalStore) -> None:
    assert (
        await store.signal(msg("rtc:description", A, 1), capacity=8, ttl=60, now=NOW, ring=30)
    ).status == "unknown"
    await send(store, msg("call:start", A, 1))
    stranger = Signal(ROOM, CALL, "cu_other", A, "rtc:description", 1, b"{}")
    assert (await send(store, stranger)).status == "forbidden"
    other = await send(store, msg("call:start", B, 1, call="call-0002"))
    assert other.status == "busy"
    assert await store.current(ROOM) == CALL


async def test_state_rules(store: SignalStore) -> None:
    await send(store, msg("call:start", A, 1))
    # The caller cannot accept its own call; the number is taken all the same.
    refused = await send(store, msg("call:accept", A, 2))
    assert (refused.status, refused.received, refused.state) == ("refused", 2, "ringing")
    # Telemetry kept here: numbered and taken, nothing relayed.
    kept = await send(store, msg("device:audio-output", A, 3, relay=False))
    assert (kept.status, kept.seq) == ("accepted", 0)
    end = await send(store, msg("call:end", A, 4, reason="hangup"))
    assert (end.status, end.state, end.ended) == ("accepted", "ended", True)
    assert await store.current(ROOM) is None
    late = await send(store, msg("rtc:ice:candidate", A, 5))
    assert (late.status, late.received) == ("ended", 5)
    info = await store.info(ROOM, CALL)
    assert info is not None and info.reason == "hangup" and info.ended == NOW
    assert [s for s, _ in await store.pending(ROOM, CALL, B, 0)] == [1, 2]
    # A new call may start in the room now.
    assert (await send(store, msg("call:start", B, 1, call="call-0002"))).status == "accepted"


async def test_reject_ends_a_ringing_call(store: SignalStore) -> None:
    await send(store, msg("call:start", A, 1))
    rejected = await send(store, msg("call:reject", B, 1, reason="declined"))
    assert (rejected.status, rejected.state, rejected.ended) == ("accepted", "ended", True)
    assert await store.active(NOW, 600) == 0


async def test_server_end_reaches_both_members_once(store: SignalStore) -> None:
    await send(store, msg("call:start", A, 1))
    assert await store.active(NOW, 600) == 1
    assert await store.ringing_due(NOW + 10) == []
    assert await store.ringing_due(NOW + 31) == [(ROOM, CALL)]
    # Only while ringing: an accepted call is not ended as missed.
    await send(store, msg("call:accept", B, 1))
    assert (
        await store.end(
            ROOM, CALL, reason="missed", payload=b"{}", now=NOW, ttl=60, only_if="ringing"
        )
        is None
    )
    assert await store.ringing_due(NOW + 31) == []
    ended = await store.end(ROOM, CALL, reason="room_closed", payload=b'{"x":1}', now=NOW, ttl=60)
    assert ended == {A: 2, B: 2}
    assert await store.end(ROOM, CALL, reason="room_closed", payload=b"{}", now=NOW, ttl=60) is None
    assert (await store.pending(ROOM, CALL, A, 1)) == [(2, b'{"x":1}')]
    info = await store.info(ROOM, CALL)
    assert info is not None and (info.state, info.reason) == ("ended", "room_closed")
    assert await store.active(NOW, 600) == 0
    assert await store.current(ROOM) is None


async def test_connected_mark_and_old_calls_leave_the_count(store: SignalStore) -> None:
    await send(store, msg("call:start", A, 1))
    await send(store, msg("call:stats", A, 2, connected=True))
    info = await store.info(ROOM, CALL)
    assert info is not None and info.connected
    assert await store.active(NOW + 10_000, 600) == 0
