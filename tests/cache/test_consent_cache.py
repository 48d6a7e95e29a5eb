"""Consent states read through the cache: a write through one process is seen by the next read
of every other process (the write drops the cached state), and reads hit the cache."""

from __future__ import annotations

from typing import Any

from core.clock import SYSTEM_CLOCK
from service.backends import Backends
from service.cache.aside import CacheAside
from service.consent.facility import ConsentFacility
from service.consent.policy import policy_from_settings
from service.db import Database
from service.metrics import REGISTRY


def hits() -> float:
    labels = {"cache": "consent_state", "outcome": "hit"}
    return REGISTRY.get_sample_value("kervan_cache_requests_total", labels) or 0.0


async def test_a_write_is_seen_by_every_process_and_reads_hit_the_cache(
    database: Database, backends: Backends, make_settings: Any
) -> None:
    policy = policy_from_settings(make_settings())

    def process() -> ConsentFacility:
        return ConsentFacility(
            database, SYSTEM_CLOCK, policy, secure_cookies=False, cache=CacheAside(backends)
        )

    a, b = process(), process()
    subject = a.mint().body["subject"]
    assert (await b.state(subject))["purposes"]["analytics"]["status"] == "unknown"
    before = hits()
    await b.state(subject)
    assert hits() == before + 1
    await a.record(subject, {"analytics": "granted"}, source="banner")
    assert (await b.state(subject))["purposes"]["analytics"]["status"] == "granted"
    await b.withdraw(subject, ["analytics"])
    assert (await a.state(subject))["purposes"]["analytics"]["status"] == "denied"
