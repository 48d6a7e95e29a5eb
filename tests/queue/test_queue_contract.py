"""One contract, three backends: the SQL outbox on SQLite and MariaDB, and Redis Streams."""

from __future__ import annotations

import asyncio

import pytest

from core.errors import ValidationFailed
from core.jobs import Job
from service.metrics import REGISTRY
from service.queue.redis_streams import RELAY_QUEUE, RedisStreamsQueue
from tests.queue.conftest import TEST_CONFIG, QueueUnderTest

Q = "tests"
W1, W2 = "worker-1", "worker-2"


async def _claim_one(qut: QueueUnderTest, worker: str = W1) -> Job:
    jobs = await qut.queue.claim([Q], 1, worker_id=worker)
    assert len(jobs) == 1, jobs
    return jobs[0]


async def test_enqueue_is_idempotent_by_key(qut: QueueUnderTest) -> None:
    assert await qut.queue.enqueue(Q, {"n": 1, "text": "çığ"}, key="k1") is True
    assert await qut.queue.enqueue(Q, {"n": 2}, key="k1") is False
    job = await _claim_one(qut)
    assert (job.key, job.queue, job.payload) == ("k1", Q, {"n": 1, "text": "çığ"})
    assert (job.attempt, job.max_attempts) == (1, TEST_CONFIG.default_max_attempts)
    assert await qut.queue.claim([Q], 10, worker_id=W1) == []


async def test_claim_respects_limit_and_queue(qut: QueueUnderTest) -> None:
    for i in range(5):
        await qut.queue.enqueue(Q, {"i": i}, key=f"a{i}")
    await qut.queue.enqueue("other", {}, key="b0")
    first = await qut.queue.claim([Q], 3, worker_id=W1)
    second = await qut.queue.claim([Q], 3, worker_id=W1)
    assert len(first) == 3
    assert len(second) == 2
    assert {j.key for j in first + second} == {f"a{i}" for i in range(5)}
    others = await qut.queue.claim(["other"], 3, worker_id=W1)
    assert [j.key for j in others] == ["b0"]


async def test_delayed_job_waits_until_due(qut: QueueUnderTest) -> None:
    await qut.queue.enqueue(Q, {}, key="later", delay=30)
    assert await qut.queue.claim([Q], 1, worker_id=W1) == []
    [stats] = await qut.queue.stats([Q])
    assert (stats.ready, stats.delayed) == (0, 1)
    qut.clock.advance(31)
    assert (await _claim_one(qut)).key == "later"


async def test_completed_key_keeps_deduplicating(qut: QueueUnderTest) -> None:
    await qut.queue.enqueue(Q, {}, key="once")
    job = await _claim_one(qut)
    assert await qut.queue.complete(job) is True
    assert await qut.queue.enqueue(Q, {}, key="once") is False
    qut.clock.advance(60)
    assert await qut.queue.claim([Q], 1, worker_id=W1) == []


async def test_retry_consumes_an_attempt_and_keeps_history(qut: QueueUnderTest) -> None:
    await qut.queue.enqueue(Q, {}, key="r")
    job = await _claim_one(qut)
    assert await qut.queue.retry(
        job, delay=5, consume_attempt=True, error="HTTP 500", outcome="failed"
    )
    assert await qut.queue.claim([Q], 1, worker_id=W1) == []
    qut.clock.advance(6)
    again = await _claim_one(qut)
    assert again.attempt == 2
    assert [h["error"] for h in again.history] == ["HTTP 500"]
    assert again.history[0]["attempt"] == 1


async def test_deferral_gives_the_attempt_back(qut: QueueUnderTest) -> None:
    await qut.queue.enqueue(Q, {}, key="d", max_attempts=1)
    job = await _claim_one(qut)
    assert await qut.queue.retry(job, delay=0, consume_attempt=False, error="429", outcome="x")
    again = await _claim_one(qut)
    assert again.attempt == 1
    assert again.history == []
    assert not again.over_budget


async def test_dead_letter_replay_and_discard(qut: QueueUnderTest) -> None:
    await qut.queue.enqueue(Q, {"to": 1}, key="dl", max_attempts=2)
    job = await _claim_one(qut)
    await qut.queue.retry(job, delay=0, consume_attempt=True, error="e1", outcome="failed")
    job = await _claim_one(qut)
    assert await qut.queue.dead_letter(job, error="e2", outcome="failed")
    [letter] = await qut.queue.dead_letters()
    assert (letter.key, letter.queue, letter.payload) == ("dl", Q, {"to": 1})
    assert (letter.attempts, letter.max_attempts, letter.last_error) == (2, 2, "e2")
    assert [h["error"] for h in letter.history] == ["e1", "e2"]
    assert await qut.queue.dead_letters(queue="other") == []
    assert (await qut.queue.get_dead_letter("dl")) == letter
    [stats] = await qut.queue.stats([Q])
    assert stats.dead == 1

    assert await qut.queue.replay("dl") is True
    assert await qut.queue.replay("dl") is False
    assert await qut.queue.dead_letters() == []
    again = await _claim_one(qut)
    assert again.attempt == 1
    assert len(again.history) == 2  # the earlier story survives the replay

    assert await qut.queue.dead_letter(again, error="e3", outcome="permanent")
    assert await qut.queue.discard("dl") is True
    assert await qut.queue.discard("dl") is False
    assert await qut.queue.get_dead_letter("dl") is None
    assert await qut.queue.enqueue(Q, {}, key="dl") is True  # a discarded key is free again


async def test_expired_lease_is_reclaimed_and_the_old_holder_is_fenced(
    qut: QueueUnderTest,
) -> None:
    await qut.queue.enqueue(Q, {}, key="lease")
    first = await _claim_one(qut, W1)
    assert await qut.queue.claim([Q], 1, worker_id=W2) == []
    # W1 "dies": its lease runs out (Redis measures idleness on its own clock, hence the sleep).
    await asyncio.sleep(TEST_CONFIG.visibility_timeout + 0.05)
    qut.clock.advance(2)
    second = await _claim_one(qut, W2)
    assert second.key == "lease"
    assert second.attempt == 2
    assert second.lease > first.lease
    assert await qut.queue.complete(first) is False
    assert (
        await qut.queue.retry(first, delay=0, consume_attempt=True, error="x", outcome="y") is False
    )
    assert await qut.queue.complete(second) is True
    assert await qut.queue.claim([Q], 1, worker_id=W1) == []


async def test_concurrent_claimers_never_share_a_job(qut: QueueUnderTest) -> None:
    for i in range(40):
        await qut.queue.enqueue(Q, {"i": i}, key=f"c{i}")
    seen: list[str] = []

    async def drain(worker: str) -> None:
        for _ in range(40):
            jobs = await qut.queue.claim([Q], 3, worker_id=worker)
            seen.extend(j.key for j in jobs)
            for job in jobs:
                await qut.queue.complete(job)

    await asyncio.gather(drain(W1), drain(W2))
    assert sorted(seen) == sorted(f"c{i}" for i in range(40))


async def test_stats_report_backlog_and_oldest_age(qut: QueueUnderTest) -> None:
    # The injected clock stands still between the steps: ages are exact, not timing windows.
    qut.clock.freeze(1_800_000_000.0)
    await qut.queue.enqueue(Q, {}, key="s1")
    qut.clock.advance(10)
    await qut.queue.enqueue(Q, {}, key="s2")
    await qut.queue.enqueue(Q, {}, key="s3", delay=100)
    qut.clock.advance(2.5)
    [stats] = await qut.queue.stats([Q])
    assert (stats.ready, stats.delayed, stats.running, stats.dead) == (2, 1, 0, 0)
    assert stats.oldest_ready_age == 12.5  # s1, enqueued 12.5 s ago
    await _claim_one(qut)
    qut.clock.advance(0.25)  # less than the lease: s1 is still running
    [stats] = await qut.queue.stats([Q])
    assert (stats.ready, stats.running) == (1, 1)
    assert stats.oldest_ready_age == 2.75  # now s2 (s1 runs; s3 is not due for 100 s)
    [empty] = await qut.queue.stats(["empty"])
    assert (empty.ready, empty.oldest_ready_age) == (0, 0.0)


async def _relay(qut: QueueUnderTest) -> None:
    if isinstance(qut.queue, RedisStreamsQueue):
        await qut.queue.relay(worker_id=W1)


async def test_enqueue_in_the_callers_transaction(qut: QueueUnderTest) -> None:
    class Rollback(Exception):
        pass

    with pytest.raises(Rollback):
        async with qut.db.begin() as conn:
            assert await qut.queue.enqueue(Q, {"v": 1}, key="tx", conn=conn)
            raise Rollback
    await _relay(qut)
    assert await qut.queue.claim([Q], 1, worker_id=W1) == []

    async with qut.db.begin() as conn:
        assert await qut.queue.enqueue(Q, {"v": 2}, key="tx", conn=conn)
    await _relay(qut)
    job = await _claim_one(qut)
    assert job.payload == {"v": 2}
    assert await qut.queue.enqueue(Q, {"v": 3}, key="tx") is False


@pytest.mark.parametrize(
    ("queue", "key", "payload"),
    [
        ("Bad Queue", "k", {}),
        ("", "k", {}),
        (Q, "", {}),
        (Q, "x" * 192, {}),
        (Q, "line\nbreak", {}),
        (Q, "k", {"not": {1, 2}}),
    ],
)
async def test_bad_input_is_refused(
    qut: QueueUnderTest, queue: str, key: str, payload: dict[str, object]
) -> None:
    with pytest.raises(ValidationFailed):
        await qut.queue.enqueue(queue, payload, key=key)


async def test_max_attempts_must_be_positive(qut: QueueUnderTest) -> None:
    with pytest.raises(ValidationFailed):
        await qut.queue.enqueue(Q, {}, key="m", max_attempts=0)


async def test_finished_jobs_are_forgotten_after_the_retention(qut: QueueUnderTest) -> None:
    await qut.queue.enqueue(Q, {}, key="old")
    await qut.queue.complete(await _claim_one(qut))
    if isinstance(qut.queue, RedisStreamsQueue):
        # Redis expires the done record by itself; nothing to purge.
        ttl = await qut.queue._r.ttl(qut.queue._job_key(Q, "old"))
        assert 0 < ttl <= TEST_CONFIG.retention
        assert await qut.queue.purge_finished(qut.clock.now() + 1) == 0
        return
    assert await qut.queue.purge_finished(qut.clock.now() - 60) == 0
    assert await qut.queue.purge_finished(qut.clock.now() + 1) == 1
    assert await qut.queue.enqueue(Q, {}, key="old") is True


async def test_per_job_timeout_travels_with_the_job(qut: QueueUnderTest) -> None:
    await qut.queue.enqueue(Q, {}, key="quick", timeout=0.25)
    await qut.queue.enqueue(Q, {}, key="plain")
    async with qut.db.begin() as conn:
        await qut.queue.enqueue(Q, {}, key="quick-tx", timeout=0.125, conn=conn)
    await _relay(qut)
    jobs = {j.key: j for j in await qut.queue.claim([Q], 10, worker_id=W1)}
    assert {k: j.timeout for k, j in jobs.items()} == {
        "quick": 0.25,
        "plain": None,
        "quick-tx": 0.125,
    }
    # A retry keeps it: it belongs to the job, not to one attempt.
    await qut.queue.retry(jobs["quick"], delay=0, consume_attempt=True, error="x", outcome="failed")
    again = await _claim_one(qut)
    assert (again.key, again.attempt, again.timeout) == ("quick", 2, 0.25)


@pytest.mark.parametrize("timeout", [0.0, -1.0, TEST_CONFIG.visibility_timeout, float("nan")])
async def test_per_job_timeout_must_fit_in_the_lease(qut: QueueUnderTest, timeout: float) -> None:
    with pytest.raises(ValidationFailed):
        await qut.queue.enqueue(Q, {}, key="t", timeout=timeout)
    async with qut.db.begin() as conn:
        with pytest.raises(ValidationFailed):
            await qut.queue.enqueue(Q, {}, key="t", timeout=timeout, conn=conn)


async def test_transactional_enqueue_is_counted_once_committed(qut: QueueUnderTest) -> None:
    def enqueued(queue: str) -> float:
        return REGISTRY.get_sample_value("kervan_queue_jobs_enqueued_total", {"queue": queue}) or 0

    counted = "counted-" + qut.kind
    target = RELAY_QUEUE if isinstance(qut.queue, RedisStreamsQueue) else counted

    class Rollback(Exception):
        pass

    before = enqueued(target)
    with pytest.raises(Rollback):
        async with qut.db.begin() as conn:
            await qut.queue.enqueue(counted, {}, key="c-rolled-back", conn=conn)
            raise Rollback
    assert enqueued(target) == before
    async with qut.db.begin() as conn:
        await qut.queue.enqueue(counted, {}, key="c-committed", conn=conn)
        assert enqueued(target) == before  # not yet: the transaction may still roll back
    assert enqueued(target) == before + 1


@pytest.mark.parametrize("qut", ["redis"], indirect=True)
async def test_stream_length_is_the_backlog(qut: QueueUnderTest) -> None:
    # KEDA scales on XLEN of the stream: finished attempts must leave no entry behind.
    assert isinstance(qut.queue, RedisStreamsQueue)
    redis, stream = qut.queue._r, qut.queue._stream(Q)
    for key in ("x-done", "x-retry", "x-dead", "x-waiting"):
        await qut.queue.enqueue(Q, {}, key=key)
    jobs = {j.key: j for j in await qut.queue.claim([Q], 3, worker_id=W1)}
    assert set(jobs) == {"x-done", "x-retry", "x-dead"}
    assert await redis.xlen(stream) == 4  # three in flight, one ready
    await qut.queue.complete(jobs["x-done"])
    await qut.queue.dead_letter(jobs["x-dead"], error="bad", outcome="permanent")
    await qut.queue.retry(
        jobs["x-retry"], delay=60, consume_attempt=True, error="later", outcome="failed"
    )
    assert await redis.xlen(stream) == 1  # only x-waiting; x-retry waits in the delayed set
    [stats] = await qut.queue.stats([Q])
    assert (stats.ready, stats.delayed, stats.running, stats.dead) == (1, 1, 0, 1)
