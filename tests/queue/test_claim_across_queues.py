"""Claims over several queues, on every backend: never more than the limit, each job once, and a
waiting claim that finds jobs in any of the queues. On a Redis Cluster each queue's stream lies
in its own slot, so these take the per-stream reading path."""

from __future__ import annotations

import asyncio

from tests.queue.conftest import QueueUnderTest

QUEUES = ["multi.a", "multi.b", "multi.c"]


async def test_a_claim_over_several_queues_keeps_its_limit_and_takes_each_job_once(
    qut: QueueUnderTest,
) -> None:
    for queue in QUEUES:
        for n in range(3):
            assert await qut.queue.enqueue(queue, {"n": n}, key=f"{queue}-{n}")
    first = await qut.queue.claim(QUEUES, 4, worker_id="w1")
    assert len(first) == 4
    rest = await qut.queue.claim(QUEUES, 10, worker_id="w2")
    keys = [job.key for job in first + rest]
    assert sorted(keys) == sorted(f"{q}-{n}" for q in QUEUES for n in range(3))
    assert {job.queue for job in first + rest} == set(QUEUES)
    assert await qut.queue.claim(QUEUES, 10, worker_id="w1") == []


async def test_a_waiting_claim_finds_a_job_of_any_queue(qut: QueueUnderTest) -> None:
    assert await qut.queue.claim(QUEUES, 5, worker_id="w1", wait=0.05) == []
    for queue in reversed(QUEUES):
        found = []

        async def enqueue_soon(queue: str = queue) -> None:
            await asyncio.sleep(0.02)
            await qut.queue.enqueue(queue, {}, key=f"late-{queue}")

        task = asyncio.create_task(enqueue_soon())
        # A claim waits on one stream at a time on a cluster: the job is found by this claim
        # or, at the latest, by one of the next ones (as a worker's loop claims again).
        for _ in range(len(QUEUES) + 2):
            found = await qut.queue.claim(QUEUES, 5, worker_id="w1", wait=0.1)
            if found:
                break
        await task
        assert [job.key for job in found] == [f"late-{queue}"]
