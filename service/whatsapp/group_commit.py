"""Group commit: items that arrive while a group is being written wait and form the next group.

A :class:`GroupRunner` is one stage of a pipeline (store the raw deliveries, then process them).
An item put on an idle stage starts a group at once, alone: a lone delivery is never delayed.
Items put while a group is in flight queue up and are taken together as the next group as soon
as it ends, at most ``max_items`` of them and ``max_bytes`` of payload (a single larger item
still goes, alone). While a burst is on - the group before had more than one item - the stage
also waits up to ``wait`` seconds for more (or until ``max_items`` are queued), so that one
transaction, one commit, one fsync serve as many items as the burst offers; when the burst is
over the next lone item goes at once again.

Each item travels with the future its requester awaits; the stage's ``run`` function resolves
it, or hands it on to the next stage. Work that a group took is always finished, even when its
requester went away (a stored delivery is still processed). A stage queues whatever it is
given: what it is given is bounded by its caller (``WebhookProcessor.handle`` refuses
deliveries beyond ``max_pending``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from core.errors import BackendUnavailable
from service.logging import get_logger
from service.whatsapp.metrics import WEBHOOK_GROUP_SIZE

T = TypeVar("T")
log = get_logger("kervan.whatsapp.group_commit")

Entry = tuple[T, "asyncio.Future[Any]"]
#: A group that ended longer ago than this was not part of the current burst.
BURST_GAP_SECONDS = 0.05


def resolve(future: asyncio.Future[Any], result: Any) -> None:
    """Sets ``result`` (an exception is raised to the requester) unless nobody waits any more."""
    if future.done():
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)


class GroupRunner(Generic[T]):
    def __init__(
        self,
        name: str,
        run: Callable[[Sequence[Entry[T]]], Awaitable[None]],
        *,
        max_items: int,
        max_bytes: int,
        size: Callable[[T], int],
        wait: float = 0.0,
    ) -> None:
        if max_items < 1 or max_bytes < 1:
            raise ValueError("a group holds at least one item and one byte")
        self.name = name
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._run = run
        self._size = size
        self._queue: deque[Entry[T]] = deque()
        self._task: asyncio.Task[None] | None = None
        self.wait = wait
        #: Size of the group before, and when it ended (event-loop time).
        self._last = 0
        self._last_end = 0.0
        self._full = asyncio.Event()

    @property
    def busy(self) -> bool:
        return self._task is not None

    def put(self, item: T, future: asyncio.Future[Any]) -> None:
        """Queues ``item``; ``future`` gets its result (or exception) once its group ran."""
        self._queue.append((item, future))
        if len(self._queue) >= self.max_items:
            self._full.set()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._drain(), name=f"whatsapp-{self.name}"
            )

    async def submit(self, item: T) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.put(item, future)
        return await future

    def _in_burst(self) -> bool:
        """Whether to wait for more: the group before had company and ended just now."""
        if self.wait <= 0 or self._last < 2 or len(self._queue) >= self.max_items:
            return False
        return asyncio.get_running_loop().time() - self._last_end < BURST_GAP_SECONDS

    def _take(self) -> list[Entry[T]]:
        group = [self._queue.popleft()]
        total = self._size(group[0][0])
        while self._queue and len(group) < self.max_items:
            size = self._size(self._queue[0][0])
            if total + size > self.max_bytes:
                break
            total += size
            group.append(self._queue.popleft())
        return group

    async def _drain(self) -> None:
        group: list[Entry[T]] = []
        # A drain starts when the stage was idle: its first group goes at once (a lone item
        # never waits for company); later groups of the same drain may wait during a burst.
        first = True
        try:
            while self._queue:
                if not first and self._in_burst():
                    self._full.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._full.wait(), self.wait)
                group = self._take()
                self._last = len(group)
                WEBHOOK_GROUP_SIZE.labels(self.name).observe(len(group))
                try:
                    await self._run(group)
                except Exception as exc:  # run resolves its futures; this is the safety net
                    log.exception("webhook %s group of %d failed", self.name, len(group))
                    for _item, future in group:
                        resolve(future, exc)
                self._last_end = asyncio.get_running_loop().time()
                group = []
                first = False
        except asyncio.CancelledError:
            # Shutting down: nobody will run what is still queued; tell its requesters.
            for _item, future in [*group, *self._queue]:
                resolve(
                    future,
                    BackendUnavailable("webhooks", "the server is stopping; deliver again"),
                )
            self._queue.clear()
            raise
        finally:
            self._task = None

    async def wait_idle(self) -> None:
        """Returns once everything queued so far has run."""
        while self._task is not None:
            await asyncio.shield(self._task)

    async def close(self) -> None:
        task = self._task
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
