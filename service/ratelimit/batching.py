"""Batches concurrent GCRA checks from one process into a few EVALSHA round trips.

When nothing is in flight a check is sent at once. Otherwise the caller enqueues it and awaits
a future; drain tasks send what is queued, shared among the free call slots, each share as ONE
call of ``service/lua/gcra.lua`` (which loops over its keys), so 64 concurrent checks cost a
few round trips instead of 64. At most ``max_inflight`` calls (of at most ``max_batch`` checks)
are in flight; checks queued meanwhile go in the next ones. Calls use the batcher's own
connections with one deadline per call; a connection whose call timed out or broke is dropped,
never reused (its late reply would be read as the next call's). A NOSCRIPT answer (a restarted
or failed-over server) loads the script and retries once.

On a Redis Cluster a script's keys must lie in one slot: a batch is split by slot, one EVALSHA
per slot, and the calls of a batch go out together in one pipeline per node (redis-py's cluster
pipeline, which also follows the cluster's redirections). The single-server path is unchanged.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from typing import Any

import hiredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

from core.errors import StateBackendError
from service.backends.errors import redis_errors
from service.backends.lua import load_lua
from service.backends.redis import RedisClient, is_cluster

_Check = tuple[str, str, "asyncio.Future[tuple[int, int, int]]"]


class GcraBatcher:
    def __init__(
        self,
        client: RedisClient,
        now_arg: Callable[[], str],
        slack_ms: int,
        *,
        max_batch: int = 256,
        max_inflight: int = 4,
    ) -> None:
        self._client: Any = client
        self._now_arg = now_arg
        self._slack = str(slack_ms)
        self._source = load_lua("gcra")
        self._sha = hashlib.sha1(self._source.encode(), usedforsecurity=False).hexdigest()
        self._max_batch = max_batch
        self._max_inflight = max_inflight
        self._pending: list[_Check] = []
        self._inflight = 0
        self._drain_scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._idle: list[AbstractConnection] = []
        self.calls_sent = 0
        self._cluster = is_cluster(client)
        if isinstance(client, RedisCluster):  # per-node connections: see _cluster_checks
            return
        pool = client.connection_pool
        # The batcher's own connections (at most max_inflight), made like the pool's but
        # without a per-socket timeout: redis-py runs each timed write as a separate task,
        # which cost more than the rest of a batched call. One deadline covers the whole call.
        self._connection_class = pool.connection_class
        self._connection_kwargs = {**pool.connection_kwargs, "socket_timeout": None}
        self._deadline = pool.connection_kwargs.get("socket_timeout") or 5.0

    async def check(self, key: str, params: str) -> tuple[int, int, int]:
        """``params`` is ``"interval burst cost"``; returns ``(allowed, tat, now)``."""
        if self._inflight == 0 and not self._pending:
            # Idle: send at once instead of waiting a loop turn for company. Callers arriving
            # while this is in flight queue up and leave together in the next call.
            self._inflight += 1
            try:
                if self._cluster:
                    return (await self._cluster_checks([key], [params]))[0]
                reply = await self._call_reloading([key], (self._now_arg(), self._slack, params))
                return int(reply[1]), int(reply[2]), int(reply[0])
            except (IndexError, TypeError, ValueError) as error:
                raise StateBackendError(f"unreadable reply from gcra script: {error!r}") from None
            finally:
                self._inflight -= 1
                self._schedule_drain()
        future: asyncio.Future[tuple[int, int, int]] = asyncio.get_running_loop().create_future()
        self._pending.append((key, params, future))
        self._schedule_drain()
        return await future

    def _schedule_drain(self) -> None:
        if self._pending and not self._drain_scheduled and self._inflight < self._max_inflight:
            self._drain_scheduled = True
            task = asyncio.get_running_loop().create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _drain(self) -> None:
        self._drain_scheduled = False
        self._inflight += 1
        try:
            while self._pending:
                # Share what is queued among the free call slots: several smaller calls in
                # flight let the server work on one while this process handles another's
                # replies, instead of both sides taking turns with two large ones.
                free = self._max_inflight - self._inflight + 1
                size = min(self._max_batch, -(-len(self._pending) // free))
                batch = self._pending[:size]
                del self._pending[:size]
                self._schedule_drain()
                await self._run(batch)
        finally:
            self._inflight -= 1

    async def _run(self, batch: list[_Check]) -> None:
        keys = [key for key, _, _ in batch]
        if self._cluster:
            await self._run_on_cluster(keys, batch)
            return
        args = (self._now_arg(), self._slack, " ".join([params for _, params, _ in batch]))
        try:
            reply = await self._call_reloading(keys, args)
        except StateBackendError as error:
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        now = int(reply[0])
        for index, (_, _, future) in enumerate(batch):
            if not future.done():  # skip callers cancelled meanwhile
                future.set_result((int(reply[2 * index + 1]), int(reply[2 * index + 2]), now))

    async def _run_on_cluster(self, keys: list[str], batch: list[_Check]) -> None:
        try:
            results = await self._cluster_checks(keys, [params for _, params, _ in batch])
        except StateBackendError as error:
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        for (_, _, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def _cluster_checks(
        self, keys: list[str], params: list[str]
    ) -> list[tuple[int, int, int]]:
        """``(allowed, tat, now)`` per check: one EVALSHA per slot, sent in one pipeline (per
        node); each slot's ``now`` is its node's clock."""
        by_slot: dict[int, list[int]] = {}
        for index, key in enumerate(keys):
            by_slot.setdefault(key_slot(key.encode()), []).append(index)
        now_arg = self._now_arg()
        results: list[tuple[int, int, int]] = [(0, 0, 0)] * len(keys)
        todo = list(by_slot.values())
        for _ in range(2):
            self.calls_sent += len(todo)
            with redis_errors("EVALSHA gcra"):
                async with self._client.pipeline(transaction=False) as pipe:
                    for group in todo:
                        pipe.execute_command(
                            "EVALSHA",
                            self._sha,
                            len(group),
                            *(keys[i] for i in group),
                            now_arg,
                            self._slack,
                            " ".join([params[i] for i in group]),
                        )
                    replies = await pipe.execute(raise_on_error=False)
            missing: list[list[int]] = []
            for group, reply in zip(todo, replies, strict=True):
                if isinstance(reply, NoScriptError):
                    missing.append(group)
                    continue
                if isinstance(reply, Exception):
                    with redis_errors("EVALSHA gcra"):
                        raise reply
                try:
                    now = int(reply[0])
                    for j, index in enumerate(group):
                        results[index] = (int(reply[2 * j + 1]), int(reply[2 * j + 2]), now)
                except (IndexError, TypeError, ValueError) as error:
                    raise StateBackendError(
                        f"unreadable reply from gcra script: {error!r}"
                    ) from None
            if not missing:
                return results
            with redis_errors("SCRIPT LOAD"):
                await self._client.script_load(self._source)  # on every primary
            todo = missing
        raise StateBackendError("redis script gcra could not be loaded")

    async def _call_reloading(self, keys: list[str], args: tuple[str, str, str]) -> Any:
        try:
            return await self._call(keys, args)
        except NoScriptError:
            with redis_errors("SCRIPT LOAD"):
                await self._client.script_load(self._source)
            return await self._call(keys, args)

    async def _call(self, keys: list[str], args: tuple[str, str, str]) -> Any:
        self.calls_sent += 1
        # hiredis packs in C; its stub types the argument as a 1-tuple.
        command = hiredis.pack_command(
            ("EVALSHA", self._sha, len(keys), *keys, *args)  # type: ignore[arg-type]
        )
        if self._idle:
            try:
                return await self._send(self._idle.pop(), command)
            except StateBackendError as error:
                # A kept connection the server has closed meanwhile (restart, idle timeout)
                # fails before anything ran: one retry on a new connection.
                if not isinstance(error.__cause__, RedisConnectionError):
                    raise
        return await self._send(self._connection_class(**self._connection_kwargs), command)

    async def _send(self, conn: AbstractConnection, command: bytes) -> Any:
        try:
            with redis_errors("EVALSHA gcra"):
                async with asyncio.timeout(self._deadline):
                    await conn.send_packed_command(command, check_health=False)
                    reply = await conn.read_response()
        except StateBackendError as error:
            if isinstance(error.__cause__, ResponseError):
                self._idle.append(conn)  # a whole error reply was read: still in step
                if isinstance(error.__cause__, NoScriptError):
                    raise error.__cause__ from None
            else:
                # Timed out or broken: a reply may still be on its way, never reuse it (redis-py
                # drops a connection interrupted mid-read too; this does not rely on it).
                await conn.disconnect(nowait=True)
            raise
        except BaseException:
            await conn.disconnect(nowait=True)
            raise
        self._idle.append(conn)
        return reply

    async def close(self) -> None:
        for task in list(self._tasks):
            await asyncio.gather(task, return_exceptions=True)
        while self._idle:
            await self._idle.pop().disconnect()
