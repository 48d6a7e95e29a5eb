"""One contract for both limiters: the same sequences give the reference's answers.

Parametrized over the in-process store and the real Redis (``backends`` fixture); the clock is
injected so both see the same instants. Random sequences use explicit seeds shown in test ids.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from core.clock import ManualClock
from core.ratelimit import Catalog
from service.ratelimit.limiter import RateLimiter
from service.ratelimit.redis_store import RedisGcraStore
from tests.reference.gcra_ref import GcraReference


def micros(clock: ManualClock) -> int:
    return round(clock.now() * 1_000_000)


@pytest.mark.parametrize("seed", range(6), ids=lambda s: f"seed={s}")
async def test_random_sequences_match_reference(
    limiter: RateLimiter, clock: ManualClock, catalog: Catalog, seed: int
) -> None:
    rng = random.Random(seed)
    reference = GcraReference(1_000_000)
    names = ["t.tight", "t.slow", "t.odd"]
    for _ in range(80):
        policy = catalog.policy(rng.choice(names))
        key = rng.choice(["a", "b", "c", "203.0.113.7"])
        cost = rng.randint(0, policy.burst)
        clock.advance(rng.choice([0, 0, 0.001, 0.05, 0.3, 1.7, 12.0]))
        decision = await limiter.check(policy.name, key, cost)
        expected = reference.check(
            f"{policy.name}/{key}", micros(clock), policy.interval, policy.burst, cost
        )
        got = (decision.allowed, decision.remaining, decision.retry_after, decision.reset_after)
        assert got == expected, (policy.name, key, cost)


async def test_burst_refill_and_exact_retry_after(limiter: RateLimiter, clock: ManualClock) -> None:
    first = [await limiter.check("t.slow", "ip") for _ in range(21)]
    assert [d.allowed for d in first] == [True] * 20 + [False]
    assert [d.remaining for d in first[:3]] == [19, 18, 17]
    refused = first[-1]
    assert refused.refused
    assert refused.retry_after == 600_000 and refused.retry_after_seconds == 1
    assert refused.reset_after == 12_000_000
    clock.advance(0.599999)
    assert not (await limiter.check("t.slow", "ip")).allowed
    clock.advance(0.000001)
    assert (await limiter.check("t.slow", "ip")).allowed


async def test_keys_and_policies_are_independent(limiter: RateLimiter) -> None:
    for _ in range(3):
        assert (await limiter.check("t.tight", "x")).allowed
    assert not (await limiter.check("t.tight", "x")).allowed
    assert (await limiter.check("t.tight", "y")).allowed
    assert (await limiter.check("t.slow", "x")).allowed


async def test_cost_zero_reads_without_consuming(limiter: RateLimiter) -> None:
    peek = await limiter.check("t.tight", "k", cost=0)
    assert peek.allowed and peek.remaining == 3
    await limiter.check("t.tight", "k", cost=2)
    peek = await limiter.check("t.tight", "k", cost=0)
    assert peek.remaining == 1
    with pytest.raises(ValueError, match="cost must be an int within"):
        await limiter.check("t.tight", "k", cost=4)
    with pytest.raises(KeyError, match="unknown rate-limit policy"):
        await limiter.check("nope", "k")


async def test_reset_forgets_a_key(limiter: RateLimiter) -> None:
    for _ in range(3):
        await limiter.check("t.tight", "r")
    assert not (await limiter.check("t.tight", "r")).allowed
    await limiter.reset("t.tight", "r")
    assert (await limiter.check("t.tight", "r")).remaining == 2


async def test_concurrent_checks_admit_exactly_the_burst(limiter: RateLimiter) -> None:
    decisions = await asyncio.gather(*(limiter.check("t.slow", "crowd") for _ in range(64)))
    assert sum(d.allowed for d in decisions) == 20
    assert sorted(d.remaining for d in decisions if d.allowed) == list(range(20))
    if isinstance(limiter.store, RedisGcraStore):
        # Batching: 64 concurrent checks travel in a handful of round trips, not 64.
        assert limiter.store.round_trips <= 4


async def test_check_all_applies_several_policies(limiter: RateLimiter) -> None:
    decisions = await limiter.check_all([("t.tight", "ip", 1), ("t.slow", "acct", 2)])
    assert [d.policy.name for d in decisions] == ["t.tight", "t.slow"]
    assert [d.remaining for d in decisions] == [2, 18]


async def test_shadow_policy_counts_but_never_refuses(limiter: RateLimiter) -> None:
    results = [await limiter.check("t.shadow", "s") for _ in range(3)]
    assert [d.allowed for d in results] == [True, True, False]
    assert not any(d.refused for d in results)


@pytest.mark.parametrize("seed", range(3), ids=lambda s: f"seed={s}")
async def test_synchronous_check_matches_reference_and_shares_state(
    limiter: RateLimiter, clock: ManualClock, catalog: Catalog, seed: int
) -> None:
    if isinstance(limiter.store, RedisGcraStore):
        assert not limiter.synchronous
        with pytest.raises(RuntimeError):
            limiter.check_now("t.tight", "a")
        return
    assert limiter.synchronous
    rng = random.Random(seed)
    reference = GcraReference(1_000_000)
    refused = 0
    for _ in range(80):
        policy = catalog.policy(rng.choice(["t.tight", "t.odd"]))
        key = rng.choice(["a", "b"])
        cost = rng.randint(0, policy.burst)
        clock.advance(rng.choice([0, 0, 0.001, 0.3, 1.7]))
        # Sync and async checks interleave on the same state.
        if rng.random() < 0.5:
            decision = limiter.check_now(policy.name, key, cost)
        else:
            decision = await limiter.check(policy.name, key, cost)
        expected = reference.check(
            f"{policy.name}/{key}", micros(clock), policy.interval, policy.burst, cost
        )
        got = (decision.allowed, decision.remaining, decision.retry_after, decision.reset_after)
        assert got == expected, (policy.name, key, cost)
        refused += not decision.allowed
    stats = [limiter.stats["t.tight"], limiter.stats["t.odd"]]
    assert sum(s.checks for s in stats) == 80
    assert sum(s.refused for s in stats) == refused


@pytest.mark.parametrize("backend_kind", ["memory"], indirect=True)
async def test_synchronous_check_keeps_shadow_mode_and_validates(limiter: RateLimiter) -> None:
    results = [limiter.check_now("t.shadow", "s") for _ in range(3)]
    assert [d.allowed for d in results] == [True, True, False]
    assert not any(d.refused for d in results)
    assert (limiter.stats["t.shadow"].shadow_refused, limiter.stats["t.shadow"].refused) == (1, 0)
    with pytest.raises(ValueError):
        limiter.check_now("t.tight", "a", 4)
    with pytest.raises(KeyError):
        limiter.check_now("no.such.policy", "a")
