"""The group-commit stage on its own: who goes together, when it waits, and what it finishes."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from core.errors import BackendUnavailable
from service.whatsapp.group_commit import Entry, GroupRunner, resolve


class Recorder:
    """A stage body that records its groups and answers each item with itself, slowly."""

    def __init__(self, seconds: float = 0.05) -> None:
        self.seconds = seconds
        self.groups: list[list[Any]] = []
        self.running = asyncio.Event()

    async def __call__(self, group: Sequence[Entry[Any]]) -> None:
        self.groups.append([item for item, _future in group])
        self.running.set()
        await asyncio.sleep(self.seconds)
        for item, future in group:
            resolve(future, ValueError(item) if item == "bad" else item)


def runner(run: Recorder, **kwargs: Any) -> GroupRunner[Any]:
    options: dict[str, Any] = {"max_items": 4, "max_bytes": 1000, "size": len, **kwargs}
    return GroupRunner("test", run, **options)


async def test_the_first_item_goes_alone_and_the_rest_together() -> None:
    run = Recorder()
    stage = runner(run)
    first = asyncio.create_task(stage.submit("a"))
    await run.running.wait()
    rest = [asyncio.create_task(stage.submit(x)) for x in ("b", "c", "d", "e", "f")]
    assert await asyncio.gather(first, *rest) == ["a", "b", "c", "d", "e", "f"]
    assert run.groups == [["a"], ["b", "c", "d", "e"], ["f"]]  # at most four per group
    assert not stage.busy


async def test_bytes_bound_a_group_but_a_large_item_still_goes() -> None:
    run = Recorder(0.01)
    stage = runner(run, max_bytes=10)
    first = asyncio.create_task(stage.submit("x"))
    await run.running.wait()
    items = ["aaaa", "bbbb", "cccc", "d" * 30, "e"]
    await asyncio.gather(first, *(stage.submit(item) for item in items))
    assert run.groups == [["x"], ["aaaa", "bbbb"], ["cccc"], ["d" * 30], ["e"]]


class Gated:
    """A stage body whose groups finish only when the test lets them (no clocks involved)."""

    def __init__(self) -> None:
        self.groups: list[list[Any]] = []
        self.gates: list[asyncio.Event] = []

    async def __call__(self, group: Sequence[Entry[Any]]) -> None:
        gate = asyncio.Event()
        self.groups.append([item for item, _future in group])
        self.gates.append(gate)
        await gate.wait()
        for item, future in group:
            resolve(future, item)

    async def until_groups(self, n: int) -> None:
        for _ in range(1000):
            if len(self.groups) >= n:
                return
            await asyncio.sleep(0)
        raise AssertionError(f"{n} groups never started: {self.groups}")


async def test_a_burst_waits_for_company_and_a_lone_item_does_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    decisions: list[bool] = []
    decide = GroupRunner._in_burst

    def recorded(stage: GroupRunner[Any]) -> bool:
        decisions.append(decide(stage))
        return decisions[-1]

    monkeypatch.setattr(GroupRunner, "_in_burst", recorded)
    run = Gated()
    # A wait far longer than the suite's timeout: a wrong wait hangs the test, it cannot pass.
    stage = runner(run, wait=3600.0)
    lone = asyncio.create_task(stage.submit("lone"))
    await run.until_groups(1)
    run.gates[0].set()
    assert await lone == "lone"
    assert decisions == []  # an idle stage's first group goes at once, nothing to decide
    first = asyncio.create_task(stage.submit("a"))
    await run.until_groups(2)
    pair = [asyncio.create_task(stage.submit(x)) for x in ("b", "c")]
    run.gates[1].set()
    await run.until_groups(3)
    assert run.groups[2] == ["b", "c"] and decisions == [False]  # the group before was alone
    # A burst is on (the group before had two): the next group waits for more...
    later = [asyncio.create_task(stage.submit(x)) for x in ("d",)]
    run.gates[2].set()
    await asyncio.gather(first, *pair)
    for _ in range(100):
        await asyncio.sleep(0)
    assert decisions == [False, True] and len(run.groups) == 3
    # ...until the group is full, not the whole wait.
    later += [asyncio.create_task(stage.submit(x)) for x in ("e", "f", "g")]
    await run.until_groups(4)
    assert run.groups[3] == ["d", "e", "f", "g"]
    run.gates[3].set()
    await asyncio.gather(*later)
    # The stage is idle again: a lone item goes at once.
    alone = asyncio.create_task(stage.submit("later"))
    await run.until_groups(5)
    run.gates[4].set()
    assert await alone == "later"
    assert decisions == [False, True] and run.groups[4] == ["later"]


async def test_a_group_is_finished_when_its_requester_goes_away() -> None:
    run = Recorder()
    stage = runner(run)
    first = asyncio.create_task(stage.submit("a"))
    await run.running.wait()
    leaving = asyncio.create_task(stage.submit("b"))
    staying = asyncio.create_task(stage.submit("c"))
    await asyncio.sleep(0)
    leaving.cancel()
    assert await asyncio.gather(first, staying) == ["a", "c"]
    assert run.groups == [["a"], ["b", "c"]]
    with pytest.raises(asyncio.CancelledError):
        await leaving


async def test_each_item_gets_its_own_outcome_and_a_crash_reaches_everyone() -> None:
    run = Recorder(0.01)
    stage = runner(run)
    outcomes = await asyncio.gather(
        *(stage.submit(x) for x in ("ok", "bad", "fine")), return_exceptions=True
    )
    assert outcomes[0] == "ok" and outcomes[2] == "fine"
    assert isinstance(outcomes[1], ValueError)

    async def crashes(group: Sequence[Entry[Any]]) -> None:
        raise RuntimeError("bug")

    broken = GroupRunner[Any]("broken", crashes, max_items=4, max_bytes=100, size=len)
    outcomes = await asyncio.gather(*(broken.submit(x) for x in ("a", "b")), return_exceptions=True)
    assert [type(o) for o in outcomes] == [RuntimeError, RuntimeError]


async def test_closing_tells_the_waiting_requesters() -> None:
    run = Recorder(10.0)
    stage = runner(run)
    held = asyncio.create_task(stage.submit("a"))
    await run.running.wait()
    queued = asyncio.create_task(stage.submit("b"))
    await asyncio.sleep(0)
    await stage.close()
    for task in (held, queued):
        with pytest.raises(BackendUnavailable, match="server is stopping"):  # a 503
            await task
    assert not stage.busy
