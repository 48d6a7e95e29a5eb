"""The rate-limiting feature's setup: the limiter (``runtime.ratelimiter``) and its lock gauge."""

from __future__ import annotations

from typing import Any

from service.audit import record_audit
from service.ratelimit.factory import LockGaugeRefresher, build_rate_limiter
from service.runtime import Runtime


async def setup(runtime: Runtime) -> None:
    async def audit(actor: str, action: str, subject: str, details: dict[str, Any]) -> None:
        async with runtime.db.begin() as conn:
            await record_audit(conn, actor=actor, action=action, subject=subject, details=details)

    limiter = build_rate_limiter(runtime.settings, runtime.backends, runtime.clock, audit)
    runtime.ratelimiter = limiter
    runtime.add_component(limiter)
    runtime.add_component(LockGaugeRefresher(limiter.lockouts))
