"""Rate limiting and lockouts for every feature: one facility, in-process or on Redis.

From a handler or worker::

    limiter = get_runtime(request).ratelimiter          # a RateLimiter
    decision = await limiter.check("otp.send", phone)    # Decision: allowed, remaining, ...
    if decision.refused: ...
    await limiter.lockouts.failure("otp", phone)         # counting lockouts, audited

HTTP: ``@api(limits=[("login", by_client_ip)])`` on an endpoint; the edge applies the default
policy to every request. Policies are declared in ``core/ratelimit/catalog.py`` (and settings).
"""

from service.ratelimit.http import rate_limited, refusal
from service.ratelimit.keyfuncs import by_admin, by_api_key, by_client_ip, by_phone
from service.ratelimit.limiter import RateLimiter
from service.ratelimit.lockouts import Lockouts, LockStatus

__all__ = [
    "LockStatus",
    "Lockouts",
    "RateLimiter",
    "by_admin",
    "by_api_key",
    "by_client_ip",
    "by_phone",
    "rate_limited",
    "refusal",
]
