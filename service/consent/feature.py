"""The consent feature's setup: the policy of this runtime (``runtime.facility(ConsentPolicy)``),
which every consent change is made under, and the API's operations (``ConsentFacility``)."""

from __future__ import annotations

from service.cache.aside import CacheAside
from service.consent.facility import ConsentFacility
from service.consent.policy import ConsentPolicy, policy_from_settings
from service.runtime import Runtime


async def setup(runtime: Runtime) -> None:
    policy = runtime.provide(ConsentPolicy, policy_from_settings(runtime.settings))
    runtime.provide(
        ConsentFacility,
        ConsentFacility(
            runtime.db,
            runtime.clock,
            policy,
            # The subject cookie must not travel over plain HTTP where HSTS is in force.
            secure_cookies=runtime.settings.env == "production",
            cache=runtime.facility(CacheAside),
        ),
    )
