"""The IETF ``RateLimit-Policy`` / ``RateLimit`` fields and ``Retry-After``.

Structured-field lists per draft-ietf-httpapi-ratelimit-headers: ``RateLimit-Policy:
"public.ip";q=100;w=10`` (quota ``q`` = burst, ``w`` = seconds a full bucket takes to refill)
and ``RateLimit: "public.ip";r=42;t=3`` (``r`` remaining units, ``t`` seconds until the bucket is
full again). Shadow and degraded decisions are not advertised: they enforce nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

from core.ratelimit import Decision, Policy
from core.ratelimit.decision import ceil_seconds


def policy_item(policy: Policy) -> str:
    return f'"{policy.name}";q={policy.burst};w={ceil_seconds(policy.tolerance)}'


def state_item(decision: Decision) -> str:
    return f'"{decision.policy.name}";r={decision.remaining};t={decision.reset_after_seconds}'


def rate_limit_headers(decisions: Sequence[Decision]) -> dict[str, str]:
    shown = [d for d in decisions if not d.policy.shadow and not d.degraded]
    headers: dict[str, str] = {}
    if shown:
        headers["RateLimit-Policy"] = ", ".join(policy_item(d.policy) for d in shown)
        headers["RateLimit"] = ", ".join(state_item(d) for d in shown)
    refused = [d for d in decisions if d.refused]
    if refused:
        headers["Retry-After"] = str(max(d.retry_after_seconds for d in refused))
    return headers
