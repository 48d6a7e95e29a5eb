"""HTTP integration: the per-route decorator and the refusal responses (the app-wide per-IP
policy is applied by the edge, ``service/edge.py``).

A refused request gets ``429 rate_limited`` with ``Retry-After`` and the ``RateLimit`` fields; a
request refused because the backend is down under a ``closed`` policy gets ``503``. Allowed
responses carry ``RateLimit-Policy`` and ``RateLimit`` too.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from core.ratelimit import Decision
from core.ratelimit.texts import LIMITER_UNAVAILABLE, RATE_LIMITED, text
from service.errors import error_response
from service.ratelimit.headers import rate_limit_headers
from service.ratelimit.keyfuncs import KeyFunc
from service.ratelimit.limiter import RateLimiter

Endpoint = Callable[[Request], Awaitable[Response]]

#: Paths the edge's per-IP policy never limits: probes and metrics scrapes must always answer.
DEFAULT_EXEMPT = ("/health", "/ready", "/metrics")


def limiter_of(app: Any) -> RateLimiter:
    limiter = getattr(app.state.runtime, "ratelimiter", None)
    if not isinstance(limiter, RateLimiter):
        raise RuntimeError("the rate limiter is not set up (service/ratelimit/feature.py)")
    return limiter


def refusal(decisions: Sequence[Decision], accept_language: str | None = None) -> Response | None:
    """The error response when any decision refuses, else ``None``.

    The message is the end user's language (``Accept-Language``); clients act on the code.
    """
    degraded = [d for d in decisions if d.degraded and not d.allowed]
    if degraded:
        return error_response(
            503,
            "rate_limiter_unavailable",
            text(LIMITER_UNAVAILABLE, accept_language),
            {"policies": [d.policy.name for d in degraded]},
            {"Retry-After": str(max(d.retry_after_seconds for d in degraded))},
        )
    refused = [d for d in decisions if d.refused]
    if not refused:
        return None
    headers = rate_limit_headers(decisions)
    return error_response(
        429,
        "rate_limited",
        text(RATE_LIMITED, accept_language),
        {
            "policies": [d.policy.name for d in refused],
            "retry_after": int(headers["Retry-After"]),
        },
        headers,
    )


def rate_limited(*rules: tuple[str, KeyFunc], cost: int = 1) -> Callable[[Endpoint], Endpoint]:
    """Limit an endpoint by ``(policy, key function)`` pairs, all checked together."""

    def wrap(endpoint: Endpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def limited(request: Request) -> Response:
            limiter = limiter_of(request.app)
            checks: list[tuple[str, str, int]] = []
            for policy, key_func in rules:
                key = await key_func(request)
                if key is not None:
                    checks.append((policy, key, cost))
            decisions = await limiter.check_all(checks) if checks else []
            refused = refusal(decisions, request.headers.get("accept-language"))
            if refused is not None:
                return refused
            response = await endpoint(request)
            response.headers.update(rate_limit_headers(decisions))
            return response

        # The policies, readable by tests that check every admin route is paced.
        limited.__kervan_rate_limits__ = tuple(policy for policy, _ in rules)  # type: ignore[attr-defined]
        return limited

    return wrap
