"""Fast answers without an asyncio task: granian's scheduler, taught the compiled fronts.

granian (2.8, ``granian/_futures.py``) hands every request to the event loop as a callback that
wraps the app's coroutine in an ``asyncio.Task``: a task object, its registration in asyncio's
weak set of all tasks, a first step scheduled one loop turn later. For the front's common case
(a fast route answered from memory with one synchronous ``response_bytes``) that machinery costs
about as much as the answer: a bare RSGI app answering the same way went from 19 to 15 us of
server CPU per request here when run without it (and kervan's rules answer from about 31 to 27).
Nothing in that answer awaits, so nothing needs the task.

``install()`` replaces granian's ``_cbsched_aioschedule`` (the function its scheduler takes its
per-request callback from) with one that, for a front target only, calls
``front.take(scope, protocol)`` straight in that loop callback: a fast answer is complete when
it returns. Anything else runs as the usual task: the coroutine ``take`` returns (with the
same watcher calls granian's own wrapper makes: ``done``, ``err``, ``taskref`` for cancelling
on disconnect), or, when ``take`` says ``PASS``, granian's own wrapper around the target (the
ASGI front finds what ``take`` decided in the scope). The RSGI front (``FastFront``) is taken
when granian calls it directly, the ASGI one (``AsgiFront``) when granian's plain ASGI wrapper
calls it with no path prefix; behind granian's access logger, or for any other target,
granian's function stays. The schedulers granian builds after ``install()`` (the worker's, an
embedded server's) use it; the app factories install it before granian builds its scheduler.

Under ASGI the front sends with granian's ``send`` and goes on at once while the awaitable it
returns is granian's empty one (nothing left to wait for); any other awaitable is awaited in a
task.

What differs for a fast answer: ``asyncio.current_task()`` is ``None`` while it runs (the front
calls only synchronous handlers, ``service/fast_routes.py``), and it runs in the scheduler's
context rather than a copy of it (the front resets the request id it sets).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, cast

import granian._futures as granian_futures

from native.edgepath import PASS, AsgiFront, FastFront

_Schedule = Callable[[Any], None]
_granian_schedule: Callable[..., _Schedule] | None = None


def _cells(function: Any) -> list[Any]:
    return [cell.cell_contents for cell in getattr(function, "__closure__", None) or ()]


def _front_of(callback: Any) -> FastFront | None:
    """The front ``callback`` (granian's ``future_watcher`` wrapper) runs, if it runs one that
    ``take`` may stand in for: the RSGI front called directly, or the ASGI front called by
    granian's plain wrapper (``_runner``: the front, an empty path prefix, the lifespan state)."""
    for inner in _cells(callback):
        if type(inner) is FastFront:
            return inner
        if getattr(inner, "__wrapped__", None) is not None and type(inner.__wrapped__) is AsgiFront:
            cells = _cells(inner)
            if len(cells) == 3 and inner.__wrapped__ in cells and "" in cells:
                front: AsgiFront = inner.__wrapped__
                return front
    return None


async def _finish(rest: Awaitable[None], watcher: Any) -> None:
    """granian's ``future_watcher`` over a coroutine already begun by ``take``."""
    try:
        await rest
    except BaseException as exc:
        watcher.err(exc)
        return
    watcher.done()


def _inline_schedule(
    loop: asyncio.AbstractEventLoop, ctx: Any, front: FastFront, callback: Any
) -> _Schedule:
    create_task = loop.create_task
    take = front.take

    def run(watcher: Any) -> None:
        try:
            rest = take(watcher.scope, watcher.proto)
        except BaseException as exc:
            watcher.err(exc)
            return
        if rest is None:
            watcher.done()
        elif rest is PASS:
            watcher.taskref(create_task(callback(watcher)))
        else:
            watcher.taskref(create_task(_finish(cast(Awaitable[None], rest), watcher)))

    def schedule(watcher: Any) -> None:
        loop.call_soon_threadsafe(run, watcher, context=ctx)

    return schedule


def _schedule_factory(loop: asyncio.AbstractEventLoop, ctx: Any, callback: Any) -> _Schedule:
    front = _front_of(callback)
    if front is None:
        assert _granian_schedule is not None
        return _granian_schedule(loop, ctx, callback)
    return _inline_schedule(loop, ctx, front, callback)


def install() -> bool:
    """Serve fast answers inline from the next scheduler granian builds on; idempotent.
    ``False`` (and nothing changed) when this granian has no scheduler hook of the expected
    shape: every request then runs as a task, as before."""
    global _granian_schedule
    current = getattr(granian_futures, "_cbsched_aioschedule", None)
    if current is _schedule_factory:
        return True
    if current is None or not callable(current):
        return False
    _granian_schedule = current
    granian_futures._cbsched_aioschedule = _schedule_factory
    return True


def installed() -> bool:
    return getattr(granian_futures, "_cbsched_aioschedule", None) is _schedule_factory


__all__ = ["install", "installed"]
