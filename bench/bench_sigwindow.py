"""Signaling window throughput: the compiled kernel against the plain-Python reference and a
straightforward dict-based window, one run.

Operations (messages) per second from a Python loop (the way the relay calls the windows), for
kervan's windows through their public wrapper (``native.sigwindow``), the test oracle
(``tests/reference/sigwindow_ref.py``, written for clarity) and ``DictSendWindow`` /
``DictReceiveWindow`` below (what one would write first: a dict keyed by sequence, relying on
its insertion order). Workloads:

- push (1 call/msg): messages sent in order into a window of 1,024, one ``push`` call each; the
  window is emptied by one cumulative ack between batches (not timed).
- push_many (batch): the same messages handed over ``--batch`` at a time with ``push_many``
  (every contender has one: the reference's and the dict window's are one Python loop over the
  pairs); the pair lists are built before the clock starts, as the relay has them from the
  store.
- ack: a window holding 256 messages is acknowledged one cumulative step per ack, each ack also
  carrying two selective acks (one new, one a repeat); refilled between batches (not timed).
- due idle: the timer tick with 256 messages held and none due (the usual case).
- due retransmit: 256 messages held, deadlines spread so that each tick (every 16 ms) finds
  about 4 of them due; rto = rto_max = 1,000 ms keeps that steady.
- receive (1 call/msg): a stream reordered in pairs (2, 1, 4, 3, ...): every other message is
  buffered and the next one delivers both; a window of 256; one ``receive`` call each.
- receive_many (batch): the same stream, ``--batch`` frames per ``receive_many`` call (which
  returns the delivered payloads alone, in order: their sequences follow on from the window's
  ``delivered``); the pair lists are built before the clock starts.

The single-message rows measure one interpreter call per message: the call itself (its
arguments, the result objects) costs a sizeable share of the reference's whole work there, which
caps what any compiled window can gain (the "ceiling" column). The batch rows are the kernel's
answer to that: one call per burst of frames.

A fourth contender, "floor", runs the same loops against the kernel's do-nothing paths (every
push and ack stale, nothing held, every receipt a duplicate): what the loop, the call, the
argument checks and the result objects cost alone. ``floor / reference`` is the most any window
could gain over the reference on a workload through this per-message API.

Each contender runs every workload for ``--seconds`` of timed work per pass, in ``--rounds``
interleaved passes, and keeps its best pass, so a load spike on a shared machine hurts one pass
of each contender rather than one contender's whole figure. The garbage collector is off while
a pass runs (as in ``timeit``) and collects between passes. Goal: the kernel at least 20x the
reference on every workload.

    .venv/bin/python bench/bench_sigwindow.py [--seconds S] [--rounds N] [--batch N]

Prints a table and writes bench/results/sigwindow.json.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import Any, Protocol

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

from native.sigwindow import (  # noqa: E402
    ACCEPTED,
    BUFFERED,
    DUPLICATE,
    ReceiveWindow,
    SendWindow,
    WindowOverflow,
)
from tests.reference.sigwindow_ref import (  # noqa: E402
    ReceiveWindowReference,
    SendWindowReference,
)

ROUNDS = 5
GOAL_VS_REFERENCE = 20.0
PAYLOAD = (
    b'{"type":"candidate","candidate":"candidate:1 1 udp 2122260223 192.0.2.1 54400 typ host"}'
)


# ------------------------------------------------------------------ the dict-based baseline


class DictSendWindow:
    """A straightforward send window: a dict from seq to ``[payload, deadline, attempts]``.

    Sequence order is the dict's insertion order, which holds while messages are pushed in
    order (as in every workload here).
    """

    def __init__(self, capacity: int, rto_ms: int, rto_max_ms: int) -> None:
        self.capacity = capacity
        self.rto_ms = rto_ms
        self.rto_max_ms = rto_max_ms
        self.acked = 0
        self.held: dict[int, list[Any]] = {}

    def push(self, seq: int, payload: object, now_ms: int) -> bool:
        if seq <= self.acked or seq in self.held:
            return False
        if seq > self.acked + self.capacity:
            raise WindowOverflow(f"seq {seq} is beyond the send window")
        self.held[seq] = [payload, now_ms + self.rto_ms, 0]
        return True

    def push_many(self, frames: Sequence[tuple[int, object]], now_ms: int) -> int:
        deadline = now_ms + self.rto_ms
        pushed = 0
        for seq, payload in frames:
            if seq <= self.acked or seq in self.held:
                continue
            if seq > self.acked + self.capacity:
                raise WindowOverflow(f"seq {seq} is beyond the send window")
            self.held[seq] = [payload, deadline, 0]
            pushed += 1
        return pushed

    def ack(self, cumulative: int, sacks: Sequence[int] = ()) -> int:
        dropped = 0
        if cumulative > self.acked:
            for seq in range(self.acked + 1, min(cumulative, self.acked + self.capacity) + 1):
                if self.held.pop(seq, None) is not None:
                    dropped += 1
            self.acked = cumulative
        for seq in sacks:
            if self.held.pop(seq, None) is not None:
                dropped += 1
        return dropped

    def due(self, now_ms: int, limit: int = 64) -> list[tuple[int, object]]:
        out: list[tuple[int, object]] = []
        for seq, entry in self.held.items():
            if len(out) == limit:
                break
            if entry[1] <= now_ms:
                entry[2] += 1
                entry[1] = now_ms + min(self.rto_ms << entry[2], self.rto_max_ms)
                out.append((seq, entry[0]))
        return out


class DictReceiveWindow:
    """A straightforward receive window: a dict of buffered payloads keyed by seq."""

    def __init__(self, capacity: int, delivered: int = 0) -> None:
        self.capacity = capacity
        self.delivered = delivered
        self.buffered: dict[int, object] = {}

    def receive(self, seq: int, payload: object) -> tuple[int, Sequence[tuple[int, object]]]:
        if seq <= self.delivered or seq in self.buffered:
            return (DUPLICATE, ())
        if seq > self.delivered + self.capacity:
            raise WindowOverflow(f"seq {seq} is beyond the receive window")
        if seq != self.delivered + 1:
            self.buffered[seq] = payload
            return (BUFFERED, ())
        out = [(seq, payload)]
        self.delivered = seq
        while self.buffered:
            following = self.buffered.pop(self.delivered + 1, None)
            if following is None:
                break
            self.delivered += 1
            out.append((self.delivered, following))
        return (ACCEPTED, out)

    def receive_many(self, frames: Sequence[tuple[int, object]]) -> list[object]:
        out: list[object] = []
        for seq, payload in frames:
            if seq <= self.delivered or seq in self.buffered:
                continue
            if seq > self.delivered + self.capacity:
                overflow = WindowOverflow(f"seq {seq} is beyond the receive window")
                overflow.delivered = out
                raise overflow
            if seq != self.delivered + 1:
                self.buffered[seq] = payload
                continue
            out.append(payload)
            self.delivered = seq
            while self.buffered:
                following = self.buffered.pop(self.delivered + 1, None)
                if following is None:
                    break
                self.delivered += 1
                out.append(following)
        return out


# ------------------------------------------------------------------ workloads


class SendLike(Protocol):
    def push(self, seq: int, payload: object, now_ms: int) -> bool: ...
    def push_many(self, frames: Sequence[tuple[int, object]], now_ms: int) -> int: ...
    def ack(self, cumulative: int, sacks: Sequence[int] = ()) -> int: ...
    def due(self, now_ms: int, limit: int = 64) -> list[tuple[int, object]]: ...


class ReceiveLike(Protocol):
    @property
    def delivered(self) -> int: ...
    def receive(self, seq: int, payload: object) -> tuple[int, Sequence[tuple[int, object]]]: ...
    def receive_many(self, frames: Sequence[tuple[int, object]]) -> list[object]: ...


SendFactory = Callable[[int, int, int], SendLike]
ReceiveFactory = Callable[[int], ReceiveLike]

#: (operations, seconds of timed work, a count of what the operations did: for checking that
#: every contender did the same work)
Measured = tuple[int, float, int]


def bench_push(make: SendFactory, seconds: float) -> Measured:
    capacity = 1024
    window = make(capacity, 100, 1_000)
    push, ack = window.push, window.ack
    base, ops, elapsed, pushed = 1, 0, 0.0, 0
    while elapsed < seconds:
        now = base
        started = time.perf_counter()
        for seq in range(base, base + capacity):
            push(seq, PAYLOAD, now)
        elapsed += time.perf_counter() - started
        pushed += ack(base + capacity - 1)
        base += capacity
        ops += capacity
    return ops, elapsed, pushed


def bench_push_many(make: SendFactory, seconds: float, batch: int) -> Measured:
    capacity = 1024
    window = make(capacity, 100, 1_000)
    push_many, ack = window.push_many, window.ack
    base, ops, elapsed, pushed = 1, 0, 0.0, 0
    while elapsed < seconds:
        now = base
        bursts = [
            [(seq, PAYLOAD) for seq in range(start, min(start + batch, base + capacity))]
            for start in range(base, base + capacity, batch)
        ]
        started = time.perf_counter()
        for frames in bursts:
            push_many(frames, now)
        elapsed += time.perf_counter() - started
        pushed += ack(base + capacity - 1)
        base += capacity
        ops += capacity
    return ops, elapsed, pushed


def bench_ack(make: SendFactory, seconds: float) -> Measured:
    held = 256
    window = make(held, 100, 1_000)
    push, ack = window.push, window.ack
    base, ops, elapsed, dropped = 1, 0, 0.0, 0
    while elapsed < seconds:
        for seq in range(base, base + held):
            push(seq, PAYLOAD, base)
        started = time.perf_counter()
        for seq in range(base, base + held):
            dropped += ack(seq, (seq + 2, seq + 1))
        elapsed += time.perf_counter() - started
        base += held
        ops += held
    return ops, elapsed, dropped


def bench_due_idle(make: SendFactory, seconds: float) -> Measured:
    held, batch = 256, 1000
    window = make(held, 1_000, 8_000)
    for seq in range(1, held + 1):
        window.push(seq, PAYLOAD, 0)
    due = window.due
    ops, elapsed, returned = 0, 0.0, 0
    while elapsed < seconds:
        started = time.perf_counter()
        for now in range(batch):  # all deadlines are at 1,000
            returned += len(due(now))
        elapsed += time.perf_counter() - started
        ops += batch
    return ops, elapsed, returned


def bench_due_retransmit(make: SendFactory, seconds: float) -> Measured:
    held, batch, tick = 256, 100, 16
    window = make(held, 1_000, 1_000)
    for seq in range(1, held + 1):
        window.push(seq, PAYLOAD, seq * 4)
    due = window.due
    now, ops, elapsed, returned = 1_000, 0, 0.0, 0
    while elapsed < seconds:
        started = time.perf_counter()
        for _ in range(batch):
            now += tick
            returned += len(due(now))
        elapsed += time.perf_counter() - started
        ops += batch
    return ops, elapsed, returned


def bench_receive(make: ReceiveFactory, seconds: float) -> Measured:
    batch = 1024
    window = make(256)
    receive = window.receive
    base, ops, elapsed, delivered = 1, 0, 0.0, 0
    order = [seq + 1 if seq % 2 == 0 else seq - 1 for seq in range(batch)]  # 1, 0, 3, 2, ...
    while elapsed < seconds:
        started = time.perf_counter()
        for offset in order:
            delivered += len(receive(base + offset, PAYLOAD)[1])
        elapsed += time.perf_counter() - started
        base += batch
        ops += batch
    return ops, elapsed, delivered


def bench_receive_many(make: ReceiveFactory, seconds: float, batch: int) -> Measured:
    stream = 1024
    window = make(256)
    receive_many = window.receive_many
    base, ops, elapsed, delivered = 1, 0, 0.0, 0
    order = [seq + 1 if seq % 2 == 0 else seq - 1 for seq in range(stream)]  # 1, 0, 3, 2, ...
    while elapsed < seconds:
        frames = [(base + offset, PAYLOAD) for offset in order]
        bursts = [frames[start : start + batch] for start in range(0, stream, batch)]
        before = window.delivered
        started = time.perf_counter()
        for burst in bursts:
            receive_many(burst)
        elapsed += time.perf_counter() - started
        # What was delivered (checked, not timed, like the pushes' count).
        delivered += window.delivered - before
        base += stream
        ops += stream
    return ops, elapsed, delivered


#: Far above every sequence a workload reaches in its seconds.
FLOOR_BASE = 1 << 40


def floor_send_window(capacity: int, rto_ms: int, rto_max_ms: int) -> SendWindow:
    """A kernel window on which each workload's every call takes its path that does nothing:
    pushes and acks are stale, nothing is ever held."""
    window = SendWindow(capacity, rto_ms, rto_max_ms)
    window.ack(FLOOR_BASE)
    return window


def floor_receive_window(capacity: int) -> ReceiveWindow:
    """A kernel window on which every receipt is a duplicate."""
    return ReceiveWindow(capacity, FLOOR_BASE)


# "floor" runs each workload's very loop, calls and arguments against the kernel's do-nothing
# paths: the loop, the call, the argument checks and the result objects the API returns, and
# nothing else. No window can beat it through this API, so floor / reference bounds the speed-up
# any kernel could show on a workload.
SEND_CONTENDERS: dict[str, SendFactory] = {
    "kernel": SendWindow,
    "reference": SendWindowReference,
    "dict": DictSendWindow,
    "floor": floor_send_window,
}
RECEIVE_CONTENDERS: dict[str, ReceiveFactory] = {
    "kernel": ReceiveWindow,
    "reference": ReceiveWindowReference,
    "dict": DictReceiveWindow,
    "floor": floor_receive_window,
}
BATCH = 32


def workloads(batch: int) -> list[tuple[str, str, Callable[[Any, float], Measured]]]:
    """(name, window kind, run) in table order."""
    return [
        ("push", "send", bench_push),
        ("push_many", "send", partial(bench_push_many, batch=batch)),
        ("ack", "send", bench_ack),
        ("due idle", "send", bench_due_idle),
        ("due retransmit", "send", bench_due_retransmit),
        ("receive", "receive", bench_receive),
        ("receive_many", "receive", partial(bench_receive_many, batch=batch)),
    ]


#: How many messages each workload's calls carry.
def calls(workload: str, batch: int) -> str:
    if workload in ("push", "receive"):
        return "1 message per call"
    if workload.endswith("_many"):
        return f"{batch} messages per call"
    return "1 operation per call"


def measure_all(seconds: float, rounds: int, batch: int) -> list[dict[str, Any]]:
    contenders: dict[str, dict[str, Any]] = {
        "send": SEND_CONTENDERS,
        "receive": RECEIVE_CONTENDERS,
    }
    jobs: list[tuple[str, str, Callable[[], Measured]]] = []
    for workload, kind, run in workloads(batch):
        for name, factory in contenders[kind].items():
            jobs.append((workload, name, partial(run, factory, seconds)))
    best: dict[tuple[str, str], float] = {}
    work: dict[tuple[str, str], float] = {}
    for _ in range(rounds):
        for workload, name, job in jobs:
            # As timeit does: no collection pauses inside the timed loops (the untimed setup
            # between them allocates the next frames, and a collection falling into a timed
            # stretch would bill them to whichever window happened to be running).
            gc.disable()
            try:
                ops, elapsed, done = job()
            finally:
                gc.enable()
            best[workload, name] = max(best.get((workload, name), 0.0), ops / elapsed)
            work[workload, name] = done / ops  # per operation: same for every contender
            gc.collect()
    rows = []
    for workload, _, _ in workloads(batch):
        kernel, reference, plain = (best[workload, n] for n in ("kernel", "reference", "dict"))
        per_op = {work[workload, n] for n in ("kernel", "reference", "dict")}
        if max(per_op) - min(per_op) > 0.01:
            raise SystemExit(f"{workload}: contenders did different work per operation {per_op}")
        rows.append(
            {
                "workload": workload,
                "calls": calls(workload, batch),
                "kernel_ops_per_second": kernel,
                "reference_ops_per_second": reference,
                "dict_ops_per_second": plain,
                "kernel_vs_reference": kernel / reference,
                "kernel_vs_dict": kernel / plain,
                "floor_ops_per_second": best[workload, "floor"],
                "ceiling_vs_reference": best[workload, "floor"] / reference,
                "work_per_op": work[workload, "kernel"],
            }
        )
    return rows


# ------------------------------------------------------------------ report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.3, help="timed work per pass")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="interleaved passes")
    parser.add_argument("--batch", type=int, default=BATCH, help="frames per batch call")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    rows = measure_all(args.seconds, args.rounds, args.batch)
    load_after = os.getloadavg()[0]
    print(f"\nSignaling windows, messages/s (best of {args.rounds} interleaved passes)")
    print(
        f"{'workload':<16} {'calls':<19} {'kernel':>12} {'reference':>11} {'dict':>11} "
        f"{'vs reference':>13} {'vs dict':>8} {'floor':>11} {'ceiling':>8}"
    )
    for r in rows:
        print(
            f"{r['workload']:<16} {r['calls'].replace(' per call', '/call'):<19} "
            f"{r['kernel_ops_per_second']:>12,.0f} "
            f"{r['reference_ops_per_second']:>11,.0f} {r['dict_ops_per_second']:>11,.0f} "
            f"{r['kernel_vs_reference']:>12.1f}x {r['kernel_vs_dict']:>7.1f}x "
            f"{r['floor_ops_per_second']:>11,.0f} {r['ceiling_vs_reference']:>7.1f}x"
        )
    print(
        "floor: the same loops against the kernel's do-nothing paths (stale pushes and acks, "
        "nothing held,\nduplicates): the loop, the call, the argument checks and the result "
        "objects alone.\nceiling = floor / reference: the most any window could gain on the "
        "workload through its API."
    )
    worst = min(rows, key=lambda r: r["kernel_vs_reference"])
    below = [r for r in rows if r["kernel_vs_reference"] < GOAL_VS_REFERENCE]
    met = not below
    print(
        f"\nGoal, kernel >= {GOAL_VS_REFERENCE:.0f}x the reference on every workload: "
        f"{'met' if met else 'missed'}; worst {worst['kernel_vs_reference']:.1f}x "
        f"({worst['workload']}). Load average {load_before:.1f} -> {load_after:.1f}."
    )
    for r in below:
        print(
            f"  {r['workload']} ({r['calls']}): {r['kernel_vs_reference']:.1f}x, "
            f"ceiling {r['ceiling_vs_reference']:.1f}x"
        )

    result = {
        "bench": "sigwindow",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cython_version": version("Cython"),
        "seconds_per_pass": args.seconds,
        "rounds": args.rounds,
        "batch": args.batch,
        # A shared machine: other processes' load lowers every contender's figure alike.
        "load_average_1min": [load_before, load_after],
        "payload_bytes": len(PAYLOAD),
        "workloads": rows,
        "goals": {
            "kernel_vs_reference_min": worst["kernel_vs_reference"],
            "kernel_vs_reference_goal": GOAL_VS_REFERENCE,
            "met": met,
            "below_goal": [r["workload"] for r in below],
        },
    }
    out = ROOT / "bench" / "results" / "sigwindow.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    print(f"\nwrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
