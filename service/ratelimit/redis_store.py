"""Redis stores: GCRA in one Lua script on the server's clock, lockouts in a hash per key.

With ``clock=None`` (production) the scripts read the Redis server's clock, so many processes on
many hosts share one time line. Tests inject a clock; its time is then passed to the scripts and
keys live ``slack_ms`` longer than their TTL so real time passing never drops state early.

Lockouts are spread over ``keys.RATELIMIT_LOCKOUT_SHARDS`` hash tags: a key's state hash and the
index of locks it is listed in share its shard's tag (one slot on Redis Cluster), so a failure
is still one script; listing locks reads every shard's index in one pipeline.
"""

from __future__ import annotations

from typing import Any

from core.clock import Clock
from core.ratelimit import Decision, LockoutRule, LockoutState, Policy, decision_from_tat
from service.backends import keys
from service.backends.errors import redis_errors
from service.backends.lua import LuaScript
from service.backends.redis import RedisClient
from service.ratelimit.base import ActiveLock, LockoutOutcome, to_micros
from service.ratelimit.batching import GcraBatcher

INJECTED_CLOCK_SLACK_MS = 600_000


class _RedisClocked:
    def __init__(self, client: RedisClient, namespace: str, clock: Clock | None) -> None:
        self._client: Any = client
        self._ns = namespace
        self._clock = clock
        self._slack = 0 if clock is None else INJECTED_CLOCK_SLACK_MS

    def _now_arg(self) -> str:
        return "" if self._clock is None else str(to_micros(self._clock.now()))

    async def _server_now(self) -> int:
        if self._clock is not None:
            return to_micros(self._clock.now())
        with redis_errors("TIME"):
            seconds, micros = await self._client.time()
        return int(seconds) * 1_000_000 + int(micros)


class RedisGcraStore(_RedisClocked):
    kind = "redis"

    def __init__(
        self,
        client: RedisClient,
        namespace: str,
        *,
        clock: Clock | None = None,
        max_batch: int = 256,
        max_inflight: int = 4,
    ) -> None:
        super().__init__(client, namespace, clock)
        self._batcher = GcraBatcher(
            client, self._now_arg, self._slack, max_batch=max_batch, max_inflight=max_inflight
        )
        self._prefix = f"{namespace}:{keys.RATELIMIT_GCRA}:"

    def _key(self, policy: Policy, key: str) -> str:
        return f"{self._prefix}{policy.name}:{key}"

    @property
    def round_trips(self) -> int:
        """Script calls sent so far (each carries a whole batch of checks)."""
        return self._batcher.calls_sent

    async def check(self, policy: Policy, key: str, cost: int) -> Decision:
        allowed, tat, now = await self._batcher.check(
            f"{self._prefix}{policy.name}:{key}", f"{policy.interval} {policy.burst} {cost}"
        )
        return decision_from_tat(policy, allowed=allowed == 1, tat=tat, now=now, cost=cost)

    async def reset(self, policy: Policy, key: str) -> None:
        with redis_errors("DEL"):
            await self._client.delete(self._key(policy, key))

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        await self._batcher.close()


_FIELDS = ("f", "w", "l", "u", "e")


def _state(values: list[Any]) -> LockoutState:
    return LockoutState(*(int(v) if v is not None else 0 for v in values))


class RedisLockoutStore(_RedisClocked):
    def __init__(self, client: RedisClient, namespace: str, *, clock: Clock | None = None) -> None:
        super().__init__(client, namespace, clock)
        self._fail = LuaScript(client, "ratelimit_lockout_fail")
        self._indexes = [self._index_of(tag) for tag in keys.lockout_tags()]

    def _index_of(self, tag: str) -> str:
        return f"{self._ns}:{tag}:{keys.RATELIMIT_LOCKOUT_INDEX}"

    def _key(self, rule: LockoutRule, key: str) -> str:
        tag = keys.lockout_tag(self._member(rule.name, key))
        return f"{self._ns}:{tag}:{rule.name}:{key}"

    def _index(self, rule: LockoutRule, key: str) -> str:
        return self._index_of(keys.lockout_tag(self._member(rule.name, key)))

    @staticmethod
    def _member(rule_name: str, key: str) -> str:
        # Rule names cannot contain "|"; the first one separates rule and key.
        return f"{rule_name}|{key}"

    async def failure(self, rule: LockoutRule, key: str) -> LockoutOutcome:
        result = await self._fail(
            keys=[self._key(rule, key), self._index(rule, key)],
            args=[
                rule.threshold,
                rule.window,
                rule.forget,
                self._now_arg(),
                self._slack,
                self._member(rule.name, key),
                *rule.durations,
            ],
        )
        locked_now, *fields, now = (int(v) for v in result)
        return LockoutOutcome(LockoutState(*fields), now, locked_now == 1)

    async def success(self, rule: LockoutRule, key: str) -> None:
        # HDEL never creates the hash, so a success for an unknown key leaves nothing behind.
        with redis_errors("HDEL"):
            await self._client.hdel(self._key(rule, key), "f", "w")

    async def state(self, rule: LockoutRule, key: str) -> tuple[LockoutState, int]:
        with redis_errors("HMGET"):
            values = await self._client.hmget(self._key(rule, key), _FIELDS)
        return _state(values), await self._server_now()

    async def unlock(self, rule: LockoutRule, key: str) -> bool:
        now = await self._server_now()
        with redis_errors("unlock"):
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.hget(self._key(rule, key), "u")
                pipe.delete(self._key(rule, key))
                pipe.zrem(self._index(rule, key), self._member(rule.name, key))
                until, _, _ = await pipe.execute()
        return until is not None and int(until) > now

    async def active_locks(self, limit: int) -> tuple[list[ActiveLock], int]:
        """The ``limit`` locks ending first, from every shard's index (each pruned first)."""
        now = await self._server_now()
        with redis_errors("lock index"):
            async with self._client.pipeline(transaction=False) as pipe:
                for index in self._indexes:
                    pipe.zremrangebyscore(index, "-inf", now)
                    pipe.zrangebyscore(
                        index, f"({now}", "+inf", start=0, num=limit, withscores=True
                    )
                replies = await pipe.execute()
        rows = sorted(
            ((int(score), member.decode()) for found in replies[1::2] for member, score in found),
        )
        locks: list[ActiveLock] = []
        for until, member in rows[:limit]:
            rule, _, key = member.partition("|")
            locks.append(ActiveLock(rule, key, until))
        return locks, now

    async def count_active(self) -> int:
        now = await self._server_now()
        with redis_errors("lock index"):
            async with self._client.pipeline(transaction=False) as pipe:
                for index in self._indexes:
                    pipe.zremrangebyscore(index, "-inf", now)
                    pipe.zcount(index, f"({now}", "+inf")
                replies = await pipe.execute()
        return sum(int(count) for count in replies[1::2])
