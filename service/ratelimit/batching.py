"""Batches concurrent EVALSHA calls from one process into pipelines.

A caller enqueues its call and awaits a future; a drain task started on the next event-loop turn
sends everything queued by then as one pipeline (no MULTI), so 64 concurrent checks cost one round
trip instead of 64. At most ``max_inflight`` pipelines are in flight; calls queued meanwhile go in
the next one. NOSCRIPT answers (a restarted or failed-over server) reload the script and retry
those calls once.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

from core.errors import StateBackendError
from service.backends.errors import redis_errors
from service.backends.lua import load_lua

_Call = tuple[tuple[str, ...], tuple[Any, ...], "asyncio.Future[Any]"]


class ScriptBatcher:
    def __init__(
        self, client: Redis, script: str, *, max_batch: int = 256, max_inflight: int = 4
    ) -> None:
        self._client: Any = client
        self._name = script
        self._source = load_lua(script)
        self._sha = hashlib.sha1(self._source.encode(), usedforsecurity=False).hexdigest()
        self._max_batch = max_batch
        self._max_inflight = max_inflight
        self._pending: list[_Call] = []
        self._inflight = 0
        self._drain_scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.pipelines_sent = 0

    async def call(self, keys: tuple[str, ...], args: tuple[Any, ...]) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((keys, args, future))
        if not self._drain_scheduled and self._inflight < self._max_inflight:
            self._drain_scheduled = True
            task = loop.create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _drain(self) -> None:
        self._drain_scheduled = False
        self._inflight += 1
        try:
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                await self._run(batch)
        finally:
            self._inflight -= 1

    async def _run(self, batch: list[_Call]) -> None:
        try:
            results = await self._execute(batch)
            retry = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
            if retry:
                with redis_errors("SCRIPT LOAD"):
                    await self._client.script_load(self._source)
                again = await self._execute([batch[i] for i in retry])
                for i, result in zip(retry, again, strict=True):
                    results[i] = result
        except StateBackendError as error:
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        for (_, _, future), result in zip(batch, results, strict=True):
            if future.done():  # the caller was cancelled
                continue
            if isinstance(result, RedisError):
                future.set_exception(
                    StateBackendError(f"redis script {self._name} failed: {result}")
                )
            else:
                future.set_result(result)

    async def _execute(self, batch: list[_Call]) -> list[Any]:
        with redis_errors(f"EVALSHA {self._name}"):
            async with self._client.pipeline(transaction=False) as pipe:
                for keys, args, _ in batch:
                    pipe.evalsha(self._sha, len(keys), *keys, *args)
                self.pipelines_sent += 1
                results: list[Any] = await pipe.execute(raise_on_error=False)
                return results

    async def close(self) -> None:
        for task in list(self._tasks):
            await asyncio.gather(task, return_exceptions=True)
