"""Which coroutine runs the jobs of which queue.

A handler is ``async (job) -> None`` (it may return an HTTP status code for the attempts
ledger). It raises ``core.jobs.RetryLater`` to be run again later without consuming an attempt,
``core.jobs.PermanentFailure`` to be dead-lettered at once, and any other exception to be
retried with backoff. Delivery is at least once, so a handler must be safe to run twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from core.jobs import Job
from service.queue.base import check_queue_name

Handler = Callable[[Job], Awaitable[object]]
#: Runs once when a job of the queue is dead-lettered (after its last attempt or a permanent
#: failure), with the final error; e.g. alert through another channel.
DeadLetterHook = Callable[[Job, str], Awaitable[None]]
#: The rate-limit keys a job must pass before it runs: ``(policy name, key)`` pairs.
Pacing = Callable[[Job], list[tuple[str, str]]]


@dataclass(frozen=True, slots=True)
class Registration:
    queue: str
    handler: Handler
    provider: str | None = None  # names the circuit breaker and the ledger's provider column
    on_dead: DeadLetterHook | None = None
    pacing: Pacing | None = None
    timeout: float | None = None  # None: the queue's default job timeout


class HandlerRegistry:
    """The handlers and pacing policies of one runtime (a process may hold several in tests).

    Features register into the registry of their runtime in their ``setup``; the worker of that
    runtime reads it. Registering a queue again replaces its handler.
    """

    def __init__(self) -> None:
        self._handlers: dict[str, Registration] = {}
        self._pacing: dict[str, str] = {}

    def register_pacing_policy(self, name: str, spec: str) -> None:
        """Declare a pacing policy (rate-limit syntax, e.g. ``"80/second burst 80"``)."""
        from core.ratelimit.policy import parse_policy

        parse_policy(name, spec)  # fail at registration, not on the first job
        self._pacing[name] = spec

    def pacing_policies(self) -> dict[str, str]:
        return dict(self._pacing)

    def register(
        self,
        queue: str,
        handler: Handler,
        *,
        provider: str | None = None,
        on_dead: DeadLetterHook | None = None,
        pacing: Pacing | None = None,
        timeout: float | None = None,
    ) -> None:
        """Route the jobs of ``queue`` to ``handler``."""
        check_queue_name(queue)
        self._handlers[queue] = Registration(queue, handler, provider, on_dead, pacing, timeout)

    def unregister(self, queue: str) -> None:
        self._handlers.pop(queue, None)

    def get(self, queue: str) -> Registration | None:
        return self._handlers.get(queue)

    def queues(self) -> list[str]:
        return sorted(self._handlers)
