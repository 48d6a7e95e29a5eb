"""The consent feature's setup: the policy of this runtime (``runtime.facility(ConsentPolicy)``)."""

from __future__ import annotations

from service.consent.policy import ConsentPolicy, install_policy, policy_from_settings
from service.runtime import Runtime


async def setup(runtime: Runtime) -> None:
    policy = runtime.provide(ConsentPolicy, policy_from_settings(runtime.settings))
    # Store calls made outside a request (WhatsApp STOP, workers) use the same policy.
    install_policy(policy)
