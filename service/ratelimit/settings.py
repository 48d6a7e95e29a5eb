"""The rate limiter's part of the settings (``KERVAN_RATELIMIT_*``), composed into
``service.settings.Settings``.

A leaf module (pydantic, the standard library and ``core`` only), so it never causes an import
cycle; read the values through the one ``Settings`` object.
"""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, Field, model_validator


class RateLimitSettings(BaseModel):
    ratelimit_policies: str = Field(
        default="",
        description="Rate-limit policies added or overriding core/ratelimit/catalog.py: "
        "`name=spec; name=spec`, e.g. `otp.send=3/hour burst 2 fail closed; "
        "public.ip=300/minute burst 50 shadow`.",
    )
    ratelimit_lockouts: str = Field(
        default="",
        description="Lockout rules likewise, e.g. "
        "`otp=5 failures in 15 minutes lock 15 minutes, 1 hour forget after 1 day`.",
    )
    ratelimit_default_policy: str = Field(
        default="public.ip",
        description="Policy the edge applies to every request per client IP; empty = none.",
    )
    ratelimit_memory_capacity: int = Field(
        default=250_000,
        ge=1,
        le=1 << 28,
        description="Keys the in-process limiter tracks per policy (at most about 110 bytes "
        "each: slots plus the key string); past it, expired keys and then those nearest to "
        "expiry are evicted.",
    )
    ratelimit_lockout_memory_capacity: int = Field(
        default=100_000,
        ge=1,
        le=10_000_000,
        description="Keys the in-process lockout store tracks (active locks are never evicted).",
    )
    ratelimit_redis_max_batch: int = Field(
        default=256, ge=1, le=10_000, description="Most checks per batched EVALSHA on Redis."
    )
    ratelimit_redis_max_inflight: int = Field(
        default=4,
        ge=1,
        le=64,
        description="Batched rate-limit calls in flight per process, each on one of the "
        "limiter's own Redis connections (beside the KERVAN_REDIS_POOL_SIZE pool).",
    )

    @model_validator(mode="after")
    def _ratelimit_catalog(self) -> Self:
        from core.errors import ValidationFailed
        from core.ratelimit import build_catalog, parse_assignments

        try:
            catalog = build_catalog(
                parse_assignments(self.ratelimit_policies, "rate-limit policy"),
                parse_assignments(self.ratelimit_lockouts, "lockout rule"),
            )
        except ValidationFailed as exc:
            raise ValueError(f"ratelimit_policies: {exc.message}") from None
        default = self.ratelimit_default_policy
        if default and default not in catalog.policies:
            raise ValueError(f"ratelimit_default_policy: unknown policy {default!r}")
        return self
