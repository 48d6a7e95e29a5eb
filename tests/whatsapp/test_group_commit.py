"""The group-commit stage on its own: who goes together, when it waits, and what it finishes."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from service.whatsapp.group_commit import Entry, GroupRunner, resolve


class Recorder:
    """A stage body that records its groups and answers each item with itself, slowly."""

    def __init__(self, seconds: float = 0.05) -> None:
        self.seconds = seconds
        self.groups: list[list[Any]] = []
        self.started: list[float] = []
        self.running = asyncio.Event()

    async def __call__(self, group: Sequence[Entry[Any]]) -> None:
        self.groups.append([item for item, _future in group])
        self.started.append(asyncio.get_running_loop().time())
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


async def test_a_burst_waits_for_company_and_a_lone_item_does_not() -> None:
    run = Recorder(0.02)
    stage = runner(run, wait=0.3)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await stage.submit("lone")  # idle stage: no wait at all
    assert loop.time() - started < 0.2
    first = asyncio.create_task(stage.submit("a"))
    await run.running.wait()
    pair = [asyncio.create_task(stage.submit(x)) for x in ("b", "c")]
    await asyncio.gather(first, *pair)
    # A burst is on (the group before had two): the next item waits for more...
    waiting = asyncio.create_task(stage.submit("d"))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    # ...until the group is full, not the whole wait.
    full = [asyncio.create_task(stage.submit(x)) for x in ("e", "f", "g")]
    await asyncio.gather(waiting, *full)
    assert run.groups[-1] == ["d", "e", "f", "g"]
    assert run.started[-1] - run.started[-2] < 0.25
    # Once the burst is over, a lone item goes at once again.
    await asyncio.sleep(0.1)
    started = loop.time()
    await stage.submit("later")
    assert loop.time() - started < 0.2


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
        with pytest.raises(RuntimeError, match="pipeline stopped"):
            await task
    assert not stage.busy
