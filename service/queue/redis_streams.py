"""The job queue on Redis Streams (scaled mode).

One stream per queue with one consumer group. Enqueue is idempotent by job key (a Lua script
creates the job hash only if absent, then adds the stream entry or the delayed-set member).
Entries are acknowledged and deleted when their attempt ends, so a stream's length is exactly
its backlog (ready plus in flight). Entries of a worker that died stay pending in the group and
are taken over with ``XAUTOCLAIM`` once idle for longer than the visibility timeout.

Every key of a queue carries the queue as its hash tag (``{q:<queue>}``, see
``service/backends/keys.py``), so each script stays in one slot of a Redis Cluster and queues
spread over the slots. A set of queue names (``q:queues``) lets the dead letters of all queues
be listed, and a dead letter be found by its key alone, without a key that all queues share.
Several queues are read one stream after the other (XREADGROUP's COUNT bounds each stream, not
the reply); on a cluster, where one XREADGROUP cannot span their slots, a claim that waits waits
on one of them at a time (the others are looked at again by the next claim, one poll later).

With ``conn`` (enqueue inside the caller's SQL transaction) the job is written to the SQL
outbox instead and relayed to Redis by the worker after the transaction committed, so a rolled
back business row never produces a job and a committed one never loses it.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from redis.exceptions import NoScriptError, RedisError, ResponseError
from sqlalchemy.ext.asyncio import AsyncConnection

from core.clock import Clock
from core.errors import StateBackendError
from core.jobs import Job
from service.backends import keys
from service.backends.errors import redis_errors
from service.backends.lua import LuaScript, load_lua
from service.backends.redis import RedisClient, is_cluster
from service.queue.base import (
    DeadLetter,
    JobQueue,
    QueueStats,
    check_enqueue,
    history_entry,
)
from service.queue.batching import TurnBatcher
from service.queue.config import QueueConfig
from service.queue.metrics import ENQUEUED
from service.queue.sql import SqlOutbox

#: Queue of the SQL outbox rows that wait to be relayed onto Redis.
RELAY_QUEUE = "relay.redis"
PROMOTE_BATCH = 500
# The socket timeout of the pool bounds how long one blocking read may wait.
MAX_BLOCK_SECONDS = 1.0


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class PipelinedScript:
    """A Lua script run many times in one pipeline (one round trip).

    redis-py's ``Script`` in a pipeline asks ``SCRIPT EXISTS`` before every execution, a second
    round trip; here calls go out as plain EVALSHA and only the ones answered NOSCRIPT (after a
    server restart) are loaded and sent again.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.source = load_lua(name)
        self.sha = hashlib.sha1(self.source.encode(), usedforsecurity=False).hexdigest()

    async def run_many(self, redis: Any, calls: list[tuple[list[str], list[Any]]]) -> list[Any]:
        replies: list[Any] = [None] * len(calls)
        todo = list(range(len(calls)))
        with redis_errors(f"script {self.name}"):
            for _ in range(2):
                async with redis.pipeline(transaction=False) as pipe:
                    for i in todo:
                        keys, args = calls[i]
                        # execute_command: a cluster pipeline refuses its evalsha method.
                        pipe.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)
                    answers = await pipe.execute(raise_on_error=False)
                missing = []
                for i, answer in zip(todo, answers, strict=True):
                    if isinstance(answer, NoScriptError):
                        missing.append(i)
                    elif isinstance(answer, RedisError):
                        raise answer
                    else:
                        replies[i] = answer
                if not missing:
                    return replies
                await redis.script_load(self.source)
                todo = missing
        raise StateBackendError(f"redis script {self.name} could not be loaded")


class RedisStreamsQueue(JobQueue):
    kind = "redis"

    def __init__(
        self,
        redis: RedisClient,
        key: Callable[..., str],
        clock: Clock,
        config: QueueConfig,
        *,
        outbox: SqlOutbox | None = None,
    ) -> None:
        self._r: Any = redis
        self._key = key
        self._clock = clock
        self._config = config
        self.outbox = outbox
        self._groups: set[str] = set()
        self._cluster = is_cluster(redis)
        self._turn = 0  # cluster: which queue's stream the next blocking read waits on
        self._last_reclaim = 0.0
        self._last_promote = -1e9
        self._enqueue = LuaScript(redis, "queue_enqueue")
        self._replay = LuaScript(redis, "queue_replay")
        self._discard = LuaScript(redis, "queue_discard")
        self._promote = PipelinedScript("queue_promote")
        self._start = PipelinedScript("queue_start")
        self._finish = PipelinedScript("queue_finish")
        # Outcomes reported in the same event-loop turn share one pipeline.
        self._finishes: TurnBatcher[tuple[list[str], list[Any]], Any] = TurnBatcher(
            lambda batch: self._finish.run_many(self._r, batch)
        )

    # --- keys ----------------------------------------------------------------------------
    def _job_key(self, queue: str, key: str) -> str:
        return self._key(keys.queue_key(queue, keys.QUEUE_JOB, key))

    def _stream(self, queue: str) -> str:
        return self._key(keys.queue_stream(queue))

    def _delayed(self, queue: str) -> str:
        return self._key(keys.queue_key(queue, keys.QUEUE_DELAYED))

    def _dead(self, queue: str) -> str:
        return self._key(keys.queue_key(queue, keys.QUEUE_DEAD))

    def _names(self) -> str:
        return self._key(keys.QUEUE_NAMES)

    # --- producing -----------------------------------------------------------------------
    async def enqueue(
        self,
        queue: str,
        payload: dict[str, Any],
        *,
        key: str,
        delay: float = 0.0,
        max_attempts: int | None = None,
        timeout: float | None = None,
        conn: AsyncConnection | None = None,
    ) -> bool:
        attempts = check_enqueue(queue, payload, key, max_attempts, self._config, timeout)
        if conn is not None:
            return await self._enqueue_in_transaction(
                queue, payload, key, delay, attempts, timeout, conn
            )
        return await self._enqueue_now(queue, payload, key, delay, attempts, timeout)

    async def _enqueue_now(
        self,
        queue: str,
        payload: dict[str, Any],
        key: str,
        delay: float,
        attempts: int,
        timeout: float | None,
    ) -> bool:
        await self._ensure_group(queue)
        now = self._clock.now()
        added = await self._enqueue(
            keys=[self._job_key(queue, key), self._stream(queue), self._delayed(queue)],
            args=[
                key,
                queue,
                orjson.dumps(payload),
                attempts,
                repr(now),
                repr(now + max(0, delay)),
                "" if timeout is None else repr(timeout),
            ],
        )
        if added:
            ENQUEUED.labels(queue).inc()
        return bool(added)

    async def _enqueue_in_transaction(
        self,
        queue: str,
        payload: dict[str, Any],
        key: str,
        delay: float,
        attempts: int,
        timeout: float | None,
        conn: AsyncConnection,
    ) -> bool:
        if self.outbox is None:
            raise RuntimeError("transactional enqueue on Redis needs the SQL outbox for relaying")
        with redis_errors("queue exists"):
            if await self._r.exists(self._job_key(queue, key)):
                return False
        relayed = {
            "queue": queue,
            "payload": payload,
            "max_attempts": attempts,
            "timeout": timeout,
        }
        # The relay row becomes due when the job does; the relay then enqueues it without delay.
        return await self.outbox.enqueue(
            RELAY_QUEUE, relayed, key=key, delay=delay, max_attempts=1_000_000, conn=conn
        )

    async def relay(self, *, worker_id: str, limit: int = 100) -> int:
        """Move committed outbox rows onto Redis; returns how many were relayed."""
        if self.outbox is None:
            return 0
        rows = await self.outbox.claim([RELAY_QUEUE], limit, worker_id=worker_id)
        for row in rows:
            body = row.payload
            timeout = body.get("timeout")  # absent in rows written before per-job timeouts
            await self._enqueue_now(
                body["queue"],
                body["payload"],
                row.key,
                0.0,
                int(body["max_attempts"]),
                None if timeout is None else float(timeout),
            )
            await self.outbox.complete(row)
        return len(rows)

    async def _ensure_group(self, queue: str) -> None:
        if queue in self._groups:
            return
        with redis_errors("queue group"):
            try:
                await self._r.xgroup_create(
                    self._stream(queue), keys.QUEUE_GROUP, id="0", mkstream=True
                )
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
            await self._r.sadd(self._names(), queue)
        self._groups.add(queue)

    # --- consuming -----------------------------------------------------------------------
    async def claim(
        self, queues: Sequence[str], limit: int, *, worker_id: str, wait: float = 0.0
    ) -> list[Job]:
        if limit <= 0 or not queues:
            return []
        for queue in queues:
            await self._ensure_group(queue)
        now = self._clock.now()
        # Delayed jobs are due with poll-interval precision; no need to look on every claim.
        if self._clock.monotonic() - self._last_promote >= self._config.poll_interval:
            self._last_promote = self._clock.monotonic()
            await self._promote.run_many(
                self._r,
                [([self._delayed(q), self._stream(q)], [repr(now), PROMOTE_BATCH]) for q in queues],
            )
        entries: list[tuple[str, str, str]] = []  # (queue, entry id, job key)
        if self._clock.monotonic() - self._last_reclaim >= self._reclaim_every():
            self._last_reclaim = self._clock.monotonic()
            entries += await self._reclaim(queues, limit, worker_id)
        if len(entries) < limit:
            block = None if wait <= 0 else max(1, int(min(wait, MAX_BLOCK_SECONDS) * 1000))
            entries += await self._read_new(queues, limit - len(entries), worker_id, block)
        return await self._start_all(entries, worker_id)

    async def _read(
        self, queues: Sequence[str], count: int, worker_id: str, block: int | None
    ) -> list[tuple[str, str, str]]:
        """New entries of ``queues`` (one XREADGROUP over their streams), waiting ``block`` ms."""
        with redis_errors("queue read"):
            try:
                reply = await self._r.xreadgroup(
                    keys.QUEUE_GROUP,
                    worker_id,
                    {self._stream(q): ">" for q in queues},
                    count=count,
                    block=block,
                )
            except ResponseError as exc:
                if "NOGROUP" in str(exc):  # the stream vanished (Redis lost its data)
                    self._groups.clear()
                raise
        by_stream = {self._stream(q): q for q in queues}
        found: list[tuple[str, str, str]] = []
        for stream, items in reply or []:
            queue = by_stream[_s(stream)]
            for entry_id, fields in items:
                found.append((queue, _s(entry_id), _s(fields.get(b"k", b""))))
        return found

    async def _read_new(
        self, queues: Sequence[str], count: int, worker_id: str, block: int | None
    ) -> list[tuple[str, str, str]]:
        """At most ``count`` new entries of ``queues``, waiting ``block`` ms when there are none.

        XREADGROUP's COUNT bounds each stream, not the reply, so several queues are read one
        after the other with what is left of ``count``. Only then, and only when all were empty,
        a read waits: on one server over every stream (it wakes for the first that gets
        entries), on a cluster on one stream, in turn (the streams lie in different slots; the
        others are looked at again by the next claim, one poll later).
        """
        if len(queues) == 1:
            return await self._read(queues, count, worker_id, block)
        found: list[tuple[str, str, str]] = []
        for queue in queues:
            found += await self._read([queue], count - len(found), worker_id, None)
            if len(found) >= count:
                return found
        if found or block is None:
            return found
        if self._cluster:
            self._turn = (self._turn + 1) % len(queues)
            return await self._read([queues[self._turn]], count, worker_id, block)
        waited = await self._read(queues, count, worker_id, block)
        # Streams that got entries between the reads above and this one are all answered at
        # once; what is beyond ``count`` stays pending and is taken over after the visibility
        # timeout, as a dead worker's entries are.
        return waited[:count]

    def _reclaim_every(self) -> float:
        return max(1.0, self._config.visibility_timeout / 4)

    async def _reclaim(
        self, queues: Sequence[str], limit: int, worker_id: str
    ) -> list[tuple[str, str, str]]:
        idle_ms = int(self._config.visibility_timeout * 1000)
        found: list[tuple[str, str, str]] = []
        with redis_errors("queue reclaim"):
            for queue in queues:
                if len(found) >= limit:
                    break
                reply = await self._r.xautoclaim(
                    self._stream(queue),
                    keys.QUEUE_GROUP,
                    worker_id,
                    min_idle_time=idle_ms,
                    start_id="0-0",
                    count=limit - len(found),
                )
                for entry_id, fields in reply[1]:
                    if fields:  # None for entries deleted while pending
                        found.append((queue, _s(entry_id), _s(fields.get(b"k", b""))))
        return found

    async def _start_all(self, entries: list[tuple[str, str, str]], worker_id: str) -> list[Job]:
        if not entries:
            return []
        now = repr(self._clock.now())
        replies = await self._start.run_many(
            self._r,
            [
                (
                    [self._job_key(queue, job_key), self._stream(queue)],
                    [entry_id, keys.QUEUE_GROUP, worker_id, now],
                )
                for queue, entry_id, job_key in entries
            ],
        )
        jobs: list[Job] = []
        for (_queue, entry_id, job_key), reply in zip(entries, replies, strict=True):
            if not reply:
                continue
            queue, payload, attempts, max_attempts, lease, enqueued_at, history, timeout = reply
            jobs.append(
                Job(
                    key=job_key,
                    queue=_s(queue),
                    payload=orjson.loads(payload),
                    attempt=int(attempts),
                    max_attempts=int(max_attempts),
                    enqueued_at=float(enqueued_at),
                    lease=int(lease),
                    history=orjson.loads(history) if history else [],
                    receipt=entry_id,
                    timeout=float(timeout) if timeout else None,
                )
            )
        return jobs

    async def _outcome(
        self,
        job: Job,
        mode: str,
        *,
        due: float = 0.0,
        give_back: bool = False,
        error: str = "",
        history: list[dict[str, Any]] | None = None,
    ) -> bool:
        now = self._clock.now()
        script_keys = [
            self._job_key(job.queue, job.key),
            self._stream(job.queue),
            self._delayed(job.queue),
            self._dead(job.queue),
        ]
        args: list[Any] = [
            job.key,
            job.receipt,
            keys.QUEUE_GROUP,
            str(job.lease),
            mode,
            repr(now),
            repr(due),
            "1" if give_back else "0",
            error[:2000],
            orjson.dumps(history) if history is not None else "",
            max(1, int(self._config.retention)),
        ]
        done = await self._finishes.submit((script_keys, args))
        return bool(done)

    async def complete(self, job: Job) -> bool:
        return await self._outcome(job, "done")

    async def retry(
        self, job: Job, *, delay: float, consume_attempt: bool, error: str, outcome: str
    ) -> bool:
        now = self._clock.now()
        history = (
            [*job.history, history_entry(job, at=now, error=error, outcome=outcome)]
            if consume_attempt
            else None
        )
        return await self._outcome(
            job,
            "retry",
            due=now + max(0.0, delay),
            give_back=not consume_attempt,
            error=error,
            history=history,
        )

    async def dead_letter(self, job: Job, *, error: str, outcome: str) -> bool:
        now = self._clock.now()
        history = [*job.history, history_entry(job, at=now, error=error, outcome=outcome)]
        return await self._outcome(job, "dead", error=error, history=history)

    # --- observing and administering ------------------------------------------------------
    async def stats(self, queues: Sequence[str]) -> list[QueueStats]:
        now = self._clock.now()
        out: list[QueueStats] = []
        with redis_errors("queue stats"):
            for queue in queues:
                await self._ensure_group(queue)
                stream = self._stream(queue)
                async with self._r.pipeline(transaction=False) as pipe:
                    pipe.xlen(stream)
                    pipe.xpending(stream, keys.QUEUE_GROUP)
                    pipe.zcard(self._delayed(queue))
                    pipe.zcard(self._dead(queue))
                    pipe.xinfo_groups(stream)
                    length, pending, delayed, dead, groups = await pipe.execute()
                running = int(pending["pending"])
                last_delivered = "0-0"
                for group in groups:
                    if _s(group["name"]) == keys.QUEUE_GROUP:
                        last_delivered = _s(group["last-delivered-id"])
                oldest_age = 0.0
                first = await self._r.xrange(stream, min=f"({last_delivered}", count=1)
                if first:
                    ready_since = float(first[0][1].get(b"t", now))
                    oldest_age = max(0.0, now - ready_since)
                out.append(
                    QueueStats(
                        queue=queue,
                        ready=max(0, int(length) - running),
                        delayed=int(delayed),
                        running=running,
                        dead=int(dead),
                        oldest_ready_age=oldest_age,
                    )
                )
        return out

    async def _queue_names(self) -> list[str]:
        with redis_errors("queue names"):
            names = await self._r.smembers(self._names())
        return sorted(_s(name) for name in names)

    async def dead_letters(
        self, *, queue: str | None = None, limit: int = 50, offset: int = 0
    ) -> list[DeadLetter]:
        """Most recent first; for all queues, the first ``offset + limit`` of each queue's
        dead letters are merged by time of death."""
        queues = [queue] if queue is not None else await self._queue_names()
        with redis_errors("queue dead letters"):
            async with self._r.pipeline(transaction=False) as pipe:
                for name in queues:
                    pipe.zrevrange(self._dead(name), 0, offset + limit - 1, withscores=True)
                per_queue = await pipe.execute()
            found = sorted(
                (
                    (float(score), _s(member), name)
                    for name, rows in zip(queues, per_queue, strict=True)
                    for member, score in rows
                ),
                reverse=True,
            )[offset : offset + limit]
            async with self._r.pipeline(transaction=False) as pipe:
                for _, member, name in found:
                    pipe.hgetall(self._job_key(name, member))
                records = await pipe.execute()
        return [
            letter
            for (_, member, _), record in zip(found, records, strict=True)
            if (letter := _dead(member, record)) is not None
        ]

    async def _dead_queue_of(self, key: str) -> str | None:
        """The queue holding ``key`` as a dead letter (job keys name their queue only in
        their hash tag, so each known queue is asked; there are a handful)."""
        queues = await self._queue_names()
        if not queues:
            return None
        with redis_errors("queue lookup"):
            async with self._r.pipeline(transaction=False) as pipe:
                for queue in queues:
                    pipe.hget(self._job_key(queue, key), "status")
                states = await pipe.execute()
        for queue, state in zip(queues, states, strict=True):
            if state == b"dead":
                return queue
        return None

    async def get_dead_letter(self, key: str) -> DeadLetter | None:
        queue = await self._dead_queue_of(key)
        if queue is None:
            return None
        with redis_errors("queue dead letter"):
            record = await self._r.hgetall(self._job_key(queue, key))
        return _dead(key, record)

    async def replay(self, key: str) -> bool:
        queue = await self._dead_queue_of(key)
        if queue is None:
            return False
        await self._ensure_group(queue)
        done = await self._replay(
            keys=[self._job_key(queue, key), self._stream(queue), self._dead(queue)],
            args=[key, repr(self._clock.now())],
        )
        return bool(done)

    async def discard(self, key: str) -> bool:
        queue = await self._dead_queue_of(key)
        if queue is None:
            return False
        done = await self._discard(keys=[self._job_key(queue, key), self._dead(queue)], args=[key])
        return bool(done)

    async def retire(self, worker_id: str, queues: Sequence[str]) -> None:
        """Delete the worker's consumer from each group unless it still holds entries.

        Consumer names are per process, so without this every restart would leave one behind.
        Entries it still holds stay pending (and get reclaimed); its name then stays too.
        """
        with redis_errors("queue retire"):
            for queue in queues:
                if queue not in self._groups:
                    continue
                held = await self._r.xpending_range(
                    self._stream(queue),
                    keys.QUEUE_GROUP,
                    min="-",
                    max="+",
                    count=1,
                    consumername=worker_id,
                )
                if not held:
                    await self._r.xgroup_delconsumer(
                        self._stream(queue), keys.QUEUE_GROUP, worker_id
                    )

    async def purge_finished(self, older_than: float) -> int:
        # Done job records expire by themselves (their TTL is the retention); only the relay
        # rows of the SQL outbox need purging.
        if self.outbox is None:
            return 0
        return await self.outbox.purge_finished(older_than)


def _dead(key: str, record: dict[bytes, bytes]) -> DeadLetter | None:
    if not record or record.get(b"status") != b"dead":
        return None
    with contextlib.suppress(ValueError):
        return DeadLetter(
            key=key,
            queue=_s(record[b"queue"]),
            payload=orjson.loads(record.get(b"payload", b"{}")),
            attempts=int(record.get(b"attempts", b"0")),
            max_attempts=int(record.get(b"max_attempts", b"0")),
            last_error=_s(record.get(b"last_error", b"")),
            enqueued_at=float(record.get(b"enqueued_at", b"0")),
            died_at=float(record.get(b"finished_at", b"0")),
            history=orjson.loads(record.get(b"history", b"[]")),
        )
    return None
