"""The compiled signaling windows agree with the plain-Python reference on every answer, and
joined by a lossy link they deliver every message exactly once, in order."""

from __future__ import annotations

import gc
import heapq
import itertools
import sys
import weakref
from collections.abc import Callable
from typing import NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from native.sigwindow import (
    ACCEPTED,
    BUFFERED,
    DUPLICATE,
    MAX_SEQ,
    ReceiveWindow,
    SendWindow,
    WindowOverflow,
)
from tests.reference.sigwindow_ref import ReceiveWindowReference, SendWindowReference

#: (rto_ms, rto_max_ms): no backoff, a short cap, a cap far away, a 1 ms rto that meets the
#: shift guard (attempts beyond 31), a cap that is no power-of-two multiple of the rto.
TIMERS = [(100, 100), (50, 400), (100, 3_600_000), (1, 3_600_000), (30, 1000)]


def outcome(call: Callable[..., object], *args: object) -> tuple[str, object]:
    """What a call answered, or which exception it raised, for comparing two implementations."""
    try:
        return ("ok", call(*args))
    except Exception as exc:
        return ("raised", type(exc))


# ------------------------------------------------------------------ kernel against reference

# (op, number, clock movement, sack offsets). Numbers are offsets from the window's base, so
# pushes, acks and receipts land below it (stale, duplicate), inside it (out of order) and
# beyond it (overflow); for "due" the number is the limit. A "push_many" batch's sequences are
# the offsets of the fourth item.
SendStep = tuple[str, int, int, list[int]]
OFFSET = st.integers(-3, 14)
STEP_MS = st.integers(0, 300)
NOTHING = st.just(0)
NO_SACKS: st.SearchStrategy[list[int]] = st.just([])
send_step: st.SearchStrategy[SendStep] = st.one_of(
    st.tuples(st.just("send"), NOTHING, STEP_MS, NO_SACKS),  # the next sequence, in order
    st.tuples(st.just("send"), NOTHING, STEP_MS, NO_SACKS),
    st.tuples(st.just("push"), OFFSET, STEP_MS, NO_SACKS),  # reordered, duplicate, stale
    # a batch: the next sequences in order (number: how many) or, with offsets, any of them
    st.tuples(st.just("send_many"), st.integers(0, 6), STEP_MS, NO_SACKS),
    st.tuples(st.just("push_many"), NOTHING, STEP_MS, st.lists(OFFSET, max_size=8)),
    st.tuples(st.just("ack"), OFFSET, NOTHING, st.lists(st.integers(-2, 14), max_size=4)),
    st.tuples(st.just("ack"), OFFSET, NOTHING, st.lists(st.integers(-2, 14), max_size=4)),
    st.tuples(st.just("due"), st.integers(0, 6), st.integers(0, 2500), NO_SACKS),
    st.tuples(st.just("due"), st.integers(0, 6), st.integers(0, 2500), NO_SACKS),
    st.tuples(st.just("rearm"), NOTHING, STEP_MS, NO_SACKS),  # a reconnect
    st.tuples(st.just("check"), NOTHING, NOTHING, NO_SACKS),
    st.tuples(st.just("check"), NOTHING, NOTHING, NO_SACKS),
)


def assert_same_send_state(kernel: SendWindow, reference: SendWindowReference) -> None:
    # next_deadline() is compared only on "check" steps: computing it settles the kernel's
    # cached earliest deadline, and due() must also be right while that cache is stale.
    assert len(kernel) == len(reference)
    assert kernel.acked == reference.acked
    assert kernel.pending() == reference.pending()
    for seq, _ in reference.pending():
        assert kernel.attempts(seq) == reference.attempts(seq)


@settings(max_examples=300, deadline=None)
@given(
    capacity=st.integers(1, 12),
    timers=st.sampled_from(TIMERS),
    steps=st.lists(send_step, min_size=20, max_size=200),
)
def test_send_window_matches_reference(
    capacity: int,
    timers: tuple[int, int],
    steps: list[SendStep],
) -> None:
    rto, rto_max = timers
    kernel = SendWindow(capacity, rto, rto_max)
    reference = SendWindowReference(capacity, rto, rto_max)
    now = 5_000_000
    sent = 0  # highest sequence pushed so far, for in-order sends
    for n, (op, number, elapsed, offsets) in enumerate(steps):
        payload = f"payload-{n}".encode()
        now += elapsed
        if op in ("send", "push"):
            seq = sent + 1 if op == "send" else max(1, reference.acked + number)
            answer = outcome(kernel.push, seq, payload, now)
            assert answer == outcome(reference.push, seq, payload, now)
            if answer == ("ok", True):
                sent = max(sent, seq)
        elif op in ("send_many", "push_many"):
            if op == "send_many":
                seqs = list(range(sent + 1, sent + 1 + number))
            else:
                seqs = [max(1, reference.acked + k) for k in offsets]
            frames = [(seq, payload + b"-%d" % seq) for seq in seqs]
            answer = outcome(kernel.push_many, frames, now)
            assert answer == outcome(reference.push_many, frames, now)
            sent = max([sent, *(seq for seq, _ in reference.pending())])
        elif op == "ack":
            cumulative = max(0, reference.acked + number)
            sacks = [max(1, reference.acked + k) for k in offsets]
            assert kernel.ack(cumulative, sacks) == reference.ack(cumulative, sacks)
        elif op == "due":
            assert kernel.due(now, number) == reference.due(now, number)
        elif op == "rearm":
            kernel.rearm(now)
            reference.rearm(now)
        else:
            assert kernel.next_deadline() == reference.next_deadline()
        assert_same_send_state(kernel, reference)
    assert kernel.next_deadline() == reference.next_deadline()
    assert kernel.due(now + 3_600_000, 64) == reference.due(now + 3_600_000, 64)


# (op, offset, limit, batch offsets): a "receive_many" batch's sequences are the offsets of the
# fourth item, from the window's base as it was before the batch.
ReceiveStep = tuple[str, int, int, list[int]]
receive_step: st.SearchStrategy[ReceiveStep] = st.tuples(
    st.sampled_from(
        [
            *("receive", "receive", "receive", "receive"),
            *("receive_many", "receive_many"),
            *("sacks", "reset"),
        ]
    ),
    st.integers(-3, 14),
    st.integers(0, 6),
    st.lists(st.integers(-3, 14), max_size=10),
)


def receive_batch(
    window: ReceiveWindow | ReceiveWindowReference, frames: list[tuple[int, object]]
) -> tuple[str, object]:
    """What ``receive_many`` answered; on an overflow, what it delivered before it."""
    try:
        return ("ok", window.receive_many(frames))
    except WindowOverflow as exc:
        return ("overflow", list(exc.delivered))


@settings(max_examples=300, deadline=None)
@given(
    capacity=st.integers(1, 12),
    start=st.integers(0, 5),
    steps=st.lists(receive_step, min_size=20, max_size=200),
)
def test_receive_window_matches_reference(
    capacity: int, start: int, steps: list[ReceiveStep]
) -> None:
    kernel = ReceiveWindow(capacity, start)
    reference = ReceiveWindowReference(capacity, start)
    for n, (op, offset, limit, offsets) in enumerate(steps):
        if op == "receive":
            seq = max(1, reference.delivered + offset)
            payload = f"payload-{n}".encode()
            assert outcome(kernel.receive, seq, payload) == outcome(reference.receive, seq, payload)
        elif op == "receive_many":
            base = reference.delivered
            frames = [(max(1, base + k), f"payload-{n}-{k}".encode()) for k in offsets]
            answer = receive_batch(kernel, frames)
            assert answer == receive_batch(reference, frames)
            if answer[0] == "ok":
                # The delivered sequences follow on from where the window stood.
                assert len(answer[1]) == reference.delivered - base  # type: ignore[arg-type]
        elif op == "sacks":
            assert kernel.sacks(limit) == reference.sacks(limit)
        else:
            delivered = max(0, reference.delivered + offset)
            kernel.reset(delivered)
            reference.reset(delivered)
        assert kernel.delivered == reference.delivered
        assert len(kernel) == len(reference)
        assert kernel.sacks(64) == reference.sacks(64)


# ------------------------------------------------------------------ end to end, lossy link


class LossyLink:
    """Delivers frames after a delay; hypothesis-chosen fates drop or duplicate some. Once the
    chosen fates are used up the link is perfect, so a run always ends."""

    PERFECT = (9, 10)

    def __init__(self, fates: list[tuple[int, int]]) -> None:
        self.fates = iter(fates)
        self.queue: list[tuple[int, int, str, tuple[int, object]]] = []
        self.order = itertools.count()

    def send(self, now: int, kind: str, frame: tuple[int, object]) -> None:
        fate, delay = next(self.fates, self.PERFECT)
        if fate <= 2:  # lost
            return
        for copy in range(2 if fate == 3 else 1):  # 3: duplicated
            arrival = now + delay + copy * 7
            heapq.heappush(self.queue, (arrival, next(self.order), kind, frame))

    def next_arrival(self) -> int | None:
        return self.queue[0][0] if self.queue else None

    def arrived(self, now: int) -> list[tuple[str, tuple[int, object]]]:
        out = []
        while self.queue and self.queue[0][0] <= now:
            _, _, kind, frame = heapq.heappop(self.queue)
            out.append((kind, frame))
        return out


@settings(max_examples=200, deadline=None)
@given(
    total=st.integers(1, 40),
    capacity=st.integers(1, 10),
    timers=st.sampled_from([(50, 50), (50, 400), (100, 3200)]),
    fates=st.lists(st.tuples(st.integers(0, 9), st.integers(0, 300)), min_size=10, max_size=300),
    reconnects=st.lists(st.integers(0, 5000), max_size=2),
    batched=st.booleans(),
)
def test_lossy_link_delivers_each_message_once_in_order(
    total: int,
    capacity: int,
    timers: tuple[int, int],
    fates: list[tuple[int, int]],
    reconnects: list[int],
    batched: bool,
) -> None:
    """Batched: the sender holds each burst of new messages with one ``push_many`` and the
    receiver takes every data frame of a moment with one ``receive_many``."""
    rto, rto_max = timers
    sender = SendWindow(capacity, rto, rto_max)
    receiver = ReceiveWindow(capacity)
    link = LossyLink(fates)
    reconnect_at = sorted(reconnects)
    now = 0
    next_seq = 1
    delivered: list[tuple[int, object]] = []
    # What the sender has been told: a retransmission of any of it would be a bug.
    cumulative_seen = 0
    sacked: set[int] = set()

    def acknowledged(seq: int) -> bool:
        return seq <= cumulative_seen or seq in sacked

    for _ in range(100_000):
        burst = []
        while next_seq <= total and next_seq < sender.acked + 1 + capacity:
            burst.append((next_seq, f"message-{next_seq}".encode()))
            next_seq += 1
        if batched:
            assert sender.push_many(burst, now) == len(burst)
        for seq, payload in burst:
            if not batched:
                assert sender.push(seq, payload, now)
            link.send(now, "data", (seq, payload))
        if next_seq > total and len(sender) == 0:
            break
        wakes = [link.next_arrival(), sender.next_deadline(), *reconnect_at[:1]]
        now = max(now, min(t for t in wakes if t is not None))
        if reconnect_at and reconnect_at[0] <= now:
            # A new connection: frames in flight are gone and the sender sends everything it
            # still holds again. The receiver keeps its buffer: a selective ack promised that
            # the sender need not send those messages again.
            reconnect_at.pop(0)
            link.queue.clear()
            for seq, held in sender.pending():
                assert not acknowledged(seq)
                link.send(now, "data", (seq, held))
            sender.rearm(now)
        data: list[tuple[int, object]] = []
        for kind, (number, body) in link.arrived(now):
            if kind == "data" and batched:
                data.append((number, body))
            elif kind == "data":
                status, deliverable = receiver.receive(number, body)
                assert status in (ACCEPTED, BUFFERED, DUPLICATE)
                delivered.extend(deliverable)
                link.send(now, "ack", (receiver.delivered, receiver.sacks()))
            else:
                assert isinstance(body, list)
                sender.ack(number, body)
                cumulative_seen = max(cumulative_seen, number)
                sacked.update(body)
        if data:
            base = receiver.delivered
            payloads = receiver.receive_many(data)
            delivered.extend(zip(range(base + 1, receiver.delivered + 1), payloads, strict=True))
            link.send(now, "ack", (receiver.delivered, receiver.sacks()))
        for seq, held in sender.due(now):
            assert not acknowledged(seq)
            link.send(now, "data", (seq, held))
    else:
        pytest.fail("the exchange did not finish")
    assert delivered == [(seq, f"message-{seq}".encode()) for seq in range(1, total + 1)]
    assert receiver.delivered == total
    assert len(receiver) == 0
    assert sender.acked <= total


# ------------------------------------------------------------------ backoff, overflow, refs


@pytest.mark.parametrize("timers", TIMERS)
def test_retransmit_deadlines_double_until_the_cap(timers: tuple[int, int]) -> None:
    rto, rto_max = timers
    window = SendWindow(4, rto, rto_max)
    now = 1_000
    window.push(1, b"lost", now)
    intervals = []
    for _ in range(60):
        deadline = window.next_deadline()
        assert deadline is not None
        intervals.append(deadline - now)
        now = deadline
        assert window.due(now - 1) == []
        assert window.due(now) == [(1, b"lost")]
    assert intervals == [min(rto * 2**k, rto_max) for k in range(60)]
    assert window.attempts(1) == 60


def test_a_late_tick_counts_the_backoff_from_the_tick() -> None:
    window = SendWindow(4, 100, 10_000)
    window.push(1, b"a", 0)
    window.push(2, b"b", 50)
    assert window.due(1_000) == [(1, b"a"), (2, b"b")]
    assert window.next_deadline() == 1_200
    window.rearm(5_000)
    assert window.attempts(1) == window.attempts(2) == 0
    assert window.next_deadline() == 5_100


def test_due_respects_the_limit_and_keeps_the_rest_due() -> None:
    window = SendWindow(8, 100, 1_000)
    for seq in range(1, 6):
        window.push(seq, seq, 0)
    assert [seq for seq, _ in window.due(100, limit=2)] == [1, 2]
    assert [seq for seq, _ in window.due(100, limit=2)] == [3, 4]
    assert window.due(100, limit=0) == []
    assert [seq for seq, _ in window.due(150)] == [5]


def test_acks_cumulative_stale_and_selective() -> None:
    window = SendWindow(8, 100, 1_000)
    for seq in range(1, 8):
        window.push(seq, seq, 0)
    assert window.ack(2, [4, 6, 6, 99]) == 4
    assert window.acked == 2
    assert [seq for seq, _ in window.pending()] == [3, 5, 7]
    assert window.ack(1) == 0  # stale
    assert window.acked == 2
    assert window.push(4, b"again", 0) is True  # selectively acked, not below the base
    assert window.push(2, b"old", 0) is False
    assert window.ack(10) == 4
    assert window.acked == 10 and len(window) == 0 and window.next_deadline() is None


def test_send_window_overflow() -> None:
    window = SendWindow(4, 100, 1_000)
    for seq in range(1, 5):
        assert window.push(seq, seq, 0)
    with pytest.raises(WindowOverflow):
        window.push(5, 5, 0)
    with pytest.raises(WindowOverflow):
        window.push(MAX_SEQ, 5, 0)
    assert len(window) == 4
    window.ack(2)
    assert window.push(5, 5, 0) and window.push(6, 6, 0)
    with pytest.raises(WindowOverflow):
        window.push(7, 7, 0)


def test_receive_window_overflow_and_order() -> None:
    window = ReceiveWindow(4)
    assert window.receive(4, b"d") == (BUFFERED, ())
    with pytest.raises(WindowOverflow):
        window.receive(5, b"e")
    assert window.receive(2, b"b") == (BUFFERED, ())
    assert window.receive(2, b"b2") == (DUPLICATE, ())
    assert window.sacks() == [2, 4] and window.sacks(1) == [2]
    assert window.receive(1, b"a") == (ACCEPTED, [(1, b"a"), (2, b"b")])
    assert window.delivered == 2 and len(window) == 1
    assert window.receive(1, b"a") == (DUPLICATE, ())
    assert window.receive(3, b"c") == (ACCEPTED, [(3, b"c"), (4, b"d")])
    assert window.receive(8, b"h") == (BUFFERED, ())
    window.reset(100)
    assert window.delivered == 100 and len(window) == 0 and window.sacks() == []
    assert window.receive(101, b"x") == (ACCEPTED, [(101, b"x")])


class Payload:
    """A payload that can be weakly referenced, to see when a window lets it go."""


def test_payloads_are_held_by_reference_and_released() -> None:
    sender = SendWindow(4, 100, 1_000)
    receiver = ReceiveWindow(4)
    sent, buffered = Payload(), Payload()
    sender.push(1, sent, 0)
    receiver.receive(2, buffered)
    assert sender.pending()[0][1] is sent
    refs = [weakref.ref(sent), weakref.ref(buffered)]
    del sent, buffered
    gc.collect()
    assert all(ref() is not None for ref in refs)
    sender.ack(1)
    receiver.reset(0)
    assert all(ref() is None for ref in refs)


def test_batch_payloads_move_without_leaks() -> None:
    """A payload buffered by one batch and delivered by the next passes through the ring and
    into the returned list: its reference count ends where it started."""
    sender = SendWindow(8, 100, 1_000)
    receiver = ReceiveWindow(8)
    first, second, third = Payload(), Payload(), Payload()
    counts = [sys.getrefcount(p) for p in (first, second, third)]
    assert receiver.receive_many([(2, second), (3, third)]) == []
    assert receiver.receive_many([(3, third)]) == []  # a duplicate: not held twice
    delivered = receiver.receive_many([(1, first)])
    assert delivered == [first, second, third] and len(receiver) == 0
    sender.push_many([(1, first), (2, second), (1, first)], 0)
    sender.ack(2)
    del delivered
    assert [sys.getrefcount(p) for p in (first, second, third)] == counts
    refs = [weakref.ref(first), weakref.ref(second)]
    receiver.receive_many([(5, first), (6, second)])
    sender.push_many([(3, first), (4, second)], 0)
    del first, second
    gc.collect()
    assert all(ref() is not None for ref in refs)
    receiver.reset(0)
    sender.ack(4)
    assert all(ref() is None for ref in refs)


def test_push_many_holds_pairs_in_turn_and_stops_at_the_overflow() -> None:
    window = SendWindow(4, 100, 1_000)
    assert window.push_many([(2, b"b"), (1, b"a"), (2, b"again")], 50) == 2
    assert window.pending() == [(1, b"a"), (2, b"b")] and window.next_deadline() == 150
    window.ack(1)
    assert window.push_many([(1, b"stale"), (4, b"d"), (3, b"c")], 60) == 2
    with pytest.raises(WindowOverflow, match="seq 6"):
        window.push_many([(5, b"e"), (6, b"f"), (2, b"never looked at")], 70)
    assert window.pending() == [(2, b"b"), (3, b"c"), (4, b"d"), (5, b"e")]
    assert window.push_many([], 80) == 0 and len(window) == 4


def test_receive_many_delivers_in_turn_and_stops_at_the_overflow() -> None:
    window = ReceiveWindow(4)
    assert window.receive_many([(3, b"c"), (2, b"b"), (3, b"c2")]) == []
    assert window.sacks() == [2, 3] and window.delivered == 0
    assert window.receive_many([(1, b"a"), (1, b"a2"), (5, b"e"), (4, b"d")]) == [
        b"a",
        b"b",
        b"c",
        b"d",
        b"e",
    ]
    assert window.delivered == 5 and len(window) == 0
    with pytest.raises(WindowOverflow, match="seq 12") as raised:
        window.receive_many([(7, b"g"), (6, b"f"), (12, b"l"), (8, b"never looked at")])
    assert raised.value.delivered == [b"f", b"g"]
    assert window.delivered == 7 and window.sacks() == []
    with pytest.raises(WindowOverflow) as single:
        window.receive(13, b"m")
    assert single.value.delivered == ()


class Frame(NamedTuple):
    seq: int
    payload: bytes


def test_batches_take_any_iterable_tuple_pairs_and_large_sequences() -> None:
    """Pairs the fast path leaves to the general check (a tuple subclass, sequences of more
    than one digit, up to ``MAX_SEQ``) and frames that are no list or tuple."""
    base = MAX_SEQ - 10
    window = ReceiveWindow(8, base)
    frames = (Frame(base + 2, b"b"), (base + 1, b"a"))
    assert window.receive_many(frames) == [b"a", b"b"]
    assert window.receive_many(iter([(base + 3, b"c")])) == [b"c"]
    assert window.receive_many(Frame(seq, b"x") for seq in (base + 5, base + 4)) == [b"x", b"x"]
    assert window.delivered == base + 5
    sender = SendWindow(8, 100, 1_000)
    sender.ack(2**31)
    assert sender.push_many(((2**31 + k, k) for k in (2, 1, 2)), 0) == 2
    assert sender.pending() == [(2**31 + 1, 1), (2**31 + 2, 2)]


def test_batches_of_any_length() -> None:
    """Long batches (their pairs checked into heap memory rather than the C stack) and empty
    ones."""
    window = ReceiveWindow(1_000)
    frames = [(seq, seq) for seq in range(1_000, 0, -1)]  # the last one completes the gap
    assert window.receive_many(frames[:-1]) == [] and len(window) == 999
    assert window.receive_many(frames[-1:] + frames) == list(range(1, 1_001))
    assert window.delivered == 1_000 and window.receive_many([]) == []
    sender = SendWindow(1_000, 100, 1_000)
    assert sender.push_many(frames, 0) == 1_000
    assert sender.pending() == [(seq, seq) for seq in range(1, 1_001)]


# ------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"capacity": 0}, ValueError, "capacity"),
        ({"capacity": 65_537}, ValueError, "capacity"),
        ({"capacity": 4.0}, TypeError, "capacity"),
        ({"capacity": True}, TypeError, "capacity"),
        ({"rto_ms": 0}, ValueError, "rto_ms"),
        ({"rto_ms": "100"}, TypeError, "rto_ms"),
        ({"rto_max_ms": 99}, ValueError, "rto_max_ms"),
        ({"rto_max_ms": 3_600_001}, ValueError, "rto_max_ms"),
    ],
)
def test_send_window_rejects_bad_configuration(
    kwargs: dict[str, object], error: type[Exception], name: str
) -> None:
    args: dict[str, object] = {"capacity": 16, "rto_ms": 100, "rto_max_ms": 1_000}
    args.update(kwargs)
    with pytest.raises(error, match=name):
        SendWindow(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"capacity": 0}, ValueError, "capacity"),
        ({"capacity": None}, TypeError, "capacity"),
        ({"delivered": -1}, ValueError, "delivered"),
        ({"delivered": 1.0}, TypeError, "delivered"),
        ({"delivered": MAX_SEQ + 1}, ValueError, "delivered"),
    ],
)
def test_receive_window_rejects_bad_configuration(
    kwargs: dict[str, object], error: type[Exception], name: str
) -> None:
    args: dict[str, object] = {"capacity": 16, "delivered": 0}
    args.update(kwargs)
    with pytest.raises(error, match=name):
        ReceiveWindow(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("call", "error", "name"),
    [
        (lambda w: w.push(0, b"", 0), ValueError, "seq"),
        (lambda w: w.push(MAX_SEQ + 1, b"", 0), ValueError, "seq"),
        (lambda w: w.push(2**80, b"", 0), ValueError, "seq"),
        (lambda w: w.push(1.0, b"", 0), TypeError, "seq"),
        (lambda w: w.push(True, b"", 0), TypeError, "seq"),
        (lambda w: w.push(1, b"", -1), ValueError, "now_ms"),
        (lambda w: w.push(1, b"", 0.5), TypeError, "now_ms"),
        (lambda w: w.ack(-1), ValueError, "cumulative"),
        (lambda w: w.ack(None), TypeError, "cumulative"),
        (lambda w: w.ack(1, "12"), TypeError, "sacks"),
        (lambda w: w.ack(1, b"\x02"), TypeError, "sacks"),
        (lambda w: w.ack(1, 2), TypeError, "sacks"),
        (lambda w: w.ack(1, [2, 0]), ValueError, "sacks"),
        (lambda w: w.ack(1, (2, "3")), TypeError, "sacks"),
        (lambda w: w.due(-1), ValueError, "now_ms"),
        (lambda w: w.due(10, -1), ValueError, "limit"),
        (lambda w: w.due(10, 2.0), TypeError, "limit"),
        (lambda w: w.rearm("now"), TypeError, "now_ms"),
        (lambda w: w.attempts(0), ValueError, "seq"),
    ],
)
def test_send_window_rejects_bad_arguments(
    call: Callable[[SendWindow], object], error: type[Exception], name: str
) -> None:
    window = SendWindow(8, 100, 1_000)
    for seq in range(1, 4):
        window.push(seq, seq, 0)
    with pytest.raises(error, match=name):
        call(window)
    # A refused call changes nothing, even when its valid arguments came first.
    assert window.acked == 0 and [seq for seq, _ in window.pending()] == [1, 2, 3]
    assert window.attempts(1) == 0


@pytest.mark.parametrize(
    ("call", "error", "name"),
    [
        (lambda w: w.receive(0, b""), ValueError, "seq"),
        (lambda w: w.receive("1", b""), TypeError, "seq"),
        (lambda w: w.sacks(-1), ValueError, "limit"),
        (lambda w: w.sacks(None), TypeError, "limit"),
        (lambda w: w.reset(-1), ValueError, "delivered"),
        (lambda w: w.reset(2.0), TypeError, "delivered"),
    ],
)
def test_receive_window_rejects_bad_arguments(
    call: Callable[[ReceiveWindow], object], error: type[Exception], name: str
) -> None:
    window = ReceiveWindow(8)
    window.receive(3, b"c")
    with pytest.raises(error, match=name):
        call(window)
    assert window.delivered == 0 and window.sacks() == [3]


def test_attempts_of_a_message_not_held() -> None:
    window = SendWindow(8, 100, 1_000)
    window.push(2, b"b", 0)
    for seq in (1, 3, 10):  # 10 shares the slot of 2 but lies beyond the window
        with pytest.raises(KeyError):
            window.attempts(seq)


BAD_FRAMES: list[tuple[object, type[Exception], str]] = [
    ("12", TypeError, "frames"),
    (b"\x01\x02", TypeError, "frames"),
    (5, TypeError, "frames"),
    (None, TypeError, "frames"),
    ([(4, b"d"), 4], TypeError, r"frames\[1\]"),
    ([(4, b"d"), [5, b"e"]], TypeError, r"frames\[1\]"),
    ([(4, b"d"), (5,)], TypeError, r"frames\[1\]"),
    ([(4, b"d"), (5, b"e", b"extra")], TypeError, r"frames\[1\]"),
    ([(4, b"d"), (0, b"e")], ValueError, r"frames\[1\] seq"),
    ([(4, b"d"), (-5, b"e")], ValueError, r"frames\[1\] seq"),
    ([(4, b"d"), (MAX_SEQ + 1, b"e")], ValueError, r"frames\[1\] seq"),
    ([(4, b"d"), (2**80, b"e")], ValueError, r"frames\[1\] seq"),
    ([(4, b"d"), (5.0, b"e")], TypeError, r"frames\[1\] seq"),
    ([(4, b"d"), (True, b"e")], TypeError, r"frames\[1\] seq"),
    ([(4, b"d"), ("5", b"e")], TypeError, r"frames\[1\] seq"),
]


@pytest.mark.parametrize(("frames", "error", "name"), BAD_FRAMES)
def test_push_many_rejects_bad_frames_changing_nothing(
    frames: object, error: type[Exception], name: str
) -> None:
    window = SendWindow(8, 100, 1_000)
    window.push(1, b"a", 0)
    with pytest.raises(error, match=name):
        window.push_many(frames, 0)  # type: ignore[arg-type]
    assert window.pending() == [(1, b"a")]  # the valid pair before the bad one is not held


def test_push_many_rejects_a_bad_clock() -> None:
    window = SendWindow(8, 100, 1_000)
    with pytest.raises(ValueError, match="now_ms"):
        window.push_many([(1, b"a")], -1)
    with pytest.raises(TypeError, match="now_ms"):
        window.push_many([(1, b"a")], 1.5)  # type: ignore[arg-type]
    assert len(window) == 0


@pytest.mark.parametrize(("frames", "error", "name"), BAD_FRAMES)
def test_receive_many_rejects_bad_frames_changing_nothing(
    frames: object, error: type[Exception], name: str
) -> None:
    window = ReceiveWindow(8)
    window.receive(3, b"c")
    with pytest.raises(error, match=name):
        window.receive_many(frames)  # type: ignore[arg-type]
    assert window.delivered == 0 and window.sacks() == [3]
