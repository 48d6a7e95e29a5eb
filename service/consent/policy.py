"""The consent policy of this process: purposes, region lifetimes, banner versions, token keys.

Built from settings once. The route module's setup installs it; code that runs without the web
app (the worker) gets one built from the process settings on first use.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.consent.banner import BannerPolicy, build_banner_policy
from core.consent.purposes import PurposeRegistry, build_registry
from core.consent.subject_proof import derive_subject_key
from core.consent.token import derive_token_key
from service.settings import Settings, load_settings


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


_active: ConsentPolicy | None = None


def install_policy(policy: ConsentPolicy) -> None:
    global _active
    _active = policy


def active_policy() -> ConsentPolicy:
    global _active
    if _active is None:
        _active = policy_from_settings(load_settings())
    return _active
