"""The consent policy of a runtime: purposes, region lifetimes, banner versions, token keys.

Built from settings once by the feature's setup and provided on the runtime
(``runtime.facility(ConsentPolicy)``); code that changes consent passes it explicitly, so two
runtimes in one process (tests, the web app beside ``kervan worker``) never share one.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.consent.banner import BannerPolicy, build_banner_policy
from core.consent.purposes import PurposeRegistry, build_registry
from core.consent.subject_proof import derive_subject_key
from core.consent.token import derive_token_key
from service.settings import Settings


@dataclass(frozen=True)
class ConsentPolicy:
    registry: PurposeRegistry
    banner: BannerPolicy
    # The first key signs; every key verifies (old secrets stay listed while tokens age out).
    token_keys: tuple[bytes, ...]
    token_lifetime: int
    # Same rotation rule: the first key issues subject proofs, every key verifies them.
    subject_keys: tuple[bytes, ...]


def policy_from_settings(settings: Settings) -> ConsentPolicy:
    secrets = [settings.consent_token_secret or None, *settings.consent_token_previous_secrets]
    roots = [secret if secret is not None else settings.cookie_secret for secret in secrets]
    keys = tuple(derive_token_key(root) for root in roots)
    return ConsentPolicy(
        registry=build_registry(settings.consent_region_ttls),
        banner=build_banner_policy(
            settings.consent_banner_version, settings.consent_banner_history
        ),
        token_keys=keys,
        token_lifetime=settings.consent_token_lifetime_seconds,
        subject_keys=tuple(derive_subject_key(root) for root in roots),
    )
