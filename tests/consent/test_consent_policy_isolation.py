"""Two apps in one process keep their own consent policy: nothing is shared through a module.

Token lifetimes, region lifetimes, banner versions and proof keys all come from each app's own
settings, through its runtime (``runtime.facility(ConsentPolicy)``), whichever app was started
first or answers in between.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import httpx

from core.clock import ManualClock
from core.consent.subject_proof import derive_subject_key, subject_proof
from service.consent import policy as policy_module
from service.consent import store
from service.consent.policy import ConsentPolicy
from service.settings import Settings

from .helpers import T0, at

MakeClient = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]
SECRET_A = "isolation-cookie-secret-a-0123456789abcdef"
SECRET_B = "isolation-cookie-secret-b-0123456789abcdef"
GRANT_ANALYTICS_IN_FR = {"choices": {"analytics": "granted"}, "region": "FR"}


def proof(subject: str, secret: str) -> dict[str, str]:
    return {"X-Consent-Proof": subject_proof(subject, derive_subject_key(secret))}


async def test_two_apps_in_one_process_do_not_share_a_consent_policy(
    make_settings: Callable[..., Settings], make_client: MakeClient, tmp_path: Path
) -> None:
    clock = ManualClock(T0)
    settings_a = make_settings(cookie_secret=SECRET_A, consent_token_lifetime_seconds=600)
    settings_b = make_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'other.db'}",
        cookie_secret=SECRET_B,
        consent_token_lifetime_seconds=7200,
        consent_region_ttls="FR.analytics=13mo",
        consent_banner_version="2",
        consent_banner_history="1,2=ads",
    )
    async with make_client(settings_a, clock=clock) as a, make_client(settings_b, clock=clock) as b:
        policy_a = a.app.state.runtime.facility(ConsentPolicy)  # type: ignore[attr-defined]
        policy_b = b.app.state.runtime.facility(ConsentPolicy)  # type: ignore[attr-defined]
        assert policy_a is not policy_b
        assert (policy_a.token_lifetime, policy_b.token_lifetime) == (600, 7200)

        # Token lifetime: each app signs with its own.
        assert (await a.post("/consent")).json()["token_expires_at"] == int(T0) + 600
        assert (await b.post("/consent")).json()["token_expires_at"] == int(T0) + 7200

        # Region lifetimes: analytics lasts 6 months in FR for A, 13 for B.
        put_a = await a.put(
            "/consent/user-1", json=GRANT_ANALYTICS_IN_FR, headers=proof("user-1", SECRET_A)
        )
        put_b = await b.put(
            "/consent/user-1", json=GRANT_ANALYTICS_IN_FR, headers=proof("user-1", SECRET_B)
        )
        assert put_a.status_code == put_b.status_code == 200, (put_a.text, put_b.text)
        assert put_a.json()["purposes"]["analytics"]["expires_at"] == at(2026, 7, 15)
        assert put_b.json()["purposes"]["analytics"]["expires_at"] == at(2027, 2, 15)

        # Banner versions: A only knows its default 1, B has moved on to 2.
        second_banner = {"choices": {"ads": "denied"}, "banner_version": "2"}
        refused = await a.put(
            "/consent/user-2", json=second_banner, headers=proof("user-2", SECRET_A)
        )
        accepted = await b.put(
            "/consent/user-2", json=second_banner, headers=proof("user-2", SECRET_B)
        )
        assert (refused.status_code, accepted.status_code) == (422, 200)

        # Proof keys: a proof issued by one app proves nothing to the other.
        crossed = await a.get("/consent/user-1", headers=proof("user-1", SECRET_B))
        assert crossed.status_code == 403


def test_consent_writers_take_the_policy_explicitly() -> None:
    """No process-wide fallback: a writer that forgot the policy fails loudly, never silently
    using whichever app installed its policy last."""
    for writer in (store.record, store.withdraw):
        assert inspect.signature(writer).parameters["policy"].default is inspect.Parameter.empty
    assert not hasattr(policy_module, "active_policy")
    assert not hasattr(policy_module, "install_policy")
