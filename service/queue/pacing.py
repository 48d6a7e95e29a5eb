"""Pacing of outbound jobs through the rate-limiting facility (``service/ratelimit``).

A job names the ``(policy, key)`` pairs it must pass (e.g. the Telegram bot as a whole and one
chat). Policies are the facility's syntax; they are checked on its GCRA store, so on Redis every
worker process shares the same budget. Short waits are slept in place; a longer one defers the
job without consuming an attempt. A failing rate-limit backend lets jobs through: pacing is a
courtesy to the provider, and the provider's own 429 is handled by the queue anyway.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.errors import BackendUnavailable
from core.ratelimit.policy import Policy, parse_policy
from service.backends.health_log import outage_logged
from service.logging import get_logger

log = get_logger("kervan.queue.pacing")


class Pacer:
    def __init__(self, limiter: Any, policies: Mapping[str, str]) -> None:
        """``limiter`` is the runtime's ``RateLimiter`` (or None: no pacing)."""
        self._store = getattr(limiter, "store", None)
        self._policies: dict[str, Policy] = {
            name: parse_policy(name, spec) for name, spec in policies.items()
        }

    @property
    def enabled(self) -> bool:
        return self._store is not None

    async def wait_needed(self, checks: list[tuple[str, str]]) -> float:
        """Take one unit of every check; 0.0 when all passed, else seconds until a retry.

        Units already taken by earlier checks of the same job stay spent: a deferred job
        therefore costs its budget once more when it comes back, which errs on the slow side.
        """
        if self._store is None:
            return 0.0
        for name, key in checks:
            policy = self._policies.get(name)
            if policy is None:
                continue
            try:
                decision = await self._store.check(policy, key, 1)
            except BackendUnavailable as exc:
                if not outage_logged(exc, "pacing"):
                    log.warning("pacing skipped, rate-limit backend failed: %s", exc.message)
                return 0.0
            if not decision.allowed:
                return max(0.001, float(decision.retry_after) / 1_000_000)
        return 0.0
