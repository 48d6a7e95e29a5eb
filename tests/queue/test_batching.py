from __future__ import annotations

import asyncio

import pytest

from service.queue.batching import TurnBatcher


async def test_calls_in_one_turn_share_a_batch_and_get_their_own_results() -> None:
    batches: list[list[int]] = []

    async def run(items: list[int]) -> list[int]:
        batches.append(items)
        await asyncio.sleep(0)
        return [i * 10 for i in items]

    batcher: TurnBatcher[int, int] = TurnBatcher(run)
    first = await asyncio.gather(*(batcher.submit(i) for i in range(5)))
    second = await batcher.submit(7)
    assert first == [0, 10, 20, 30, 40]
    assert second == 70
    assert batches == [[0, 1, 2, 3, 4], [7]]


async def test_a_failed_batch_fails_every_caller() -> None:
    async def run(items: list[int]) -> list[int]:
        raise RuntimeError("backend down")

    batcher: TurnBatcher[int, int] = TurnBatcher(run)
    results = await asyncio.gather(batcher.submit(1), batcher.submit(2), return_exceptions=True)
    assert [str(r) for r in results] == ["backend down", "backend down"]
    with pytest.raises(RuntimeError):
        await batcher.submit(3)  # and the next batch is tried afresh
