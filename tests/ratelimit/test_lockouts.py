"""Lockouts behave alike in-process and on Redis, and follow the pure transition functions."""

from __future__ import annotations

import random

import pytest

from core.clock import ManualClock
from core.ratelimit import Catalog, LockoutState, record_failure, record_success
from service.errors import ApiError
from service.ratelimit.limiter import RateLimiter
from tests.ratelimit.conftest import AuditLog

MINUTE = 60.0


async def test_lock_escalates_and_success_resets_failures(
    limiter: RateLimiter, clock: ManualClock, audit_log: AuditLog
) -> None:
    lockouts = limiter.lockouts
    assert not (await lockouts.failure("t.lock", "+905321234567")).locked
    await lockouts.success("t.lock", "+905321234567")  # success clears the count
    for _ in range(2):
        assert not (await lockouts.failure("t.lock", "+905321234567")).locked
    status = await lockouts.failure("t.lock", "+905321234567")
    assert status.locked and status.level == 1
    assert status.retry_after == 10 * 60 * 1_000_000
    with pytest.raises(ApiError) as caught:
        await lockouts.ensure_unlocked("t.lock", "+905321234567")
    assert caught.value.status == 429 and caught.value.code == "locked_out"
    assert caught.value.headers == {"Retry-After": "600"}
    with pytest.raises(ApiError) as german:
        await lockouts.ensure_unlocked("t.lock", "+905321234567", "de-DE,de;q=0.9")
    assert german.value.message.startswith("Zu viele fehlgeschlagene Versuche")
    assert audit_log.entries[-1][:3] == ("system", "lockout.locked", "lockout:t.lock:+905321234567")

    clock.advance(10 * MINUTE)
    await lockouts.ensure_unlocked("t.lock", "+905321234567")
    for _ in range(3):
        status = await lockouts.failure("t.lock", "+905321234567")
    assert status.locked and status.level == 2
    assert status.retry_after == 60 * 60 * 1_000_000  # escalated to the second step

    clock.advance(60 * MINUTE + 2 * 60 * MINUTE)  # lock over and escalation forgotten
    for _ in range(3):
        status = await lockouts.failure("t.lock", "+905321234567")
    assert status.level == 1 and status.retry_after == 10 * 60 * 1_000_000


async def test_failures_outside_the_window_do_not_add_up(
    limiter: RateLimiter, clock: ManualClock
) -> None:
    for _ in range(2):
        await limiter.lockouts.failure("t.lock", "slow")
    clock.advance(MINUTE)
    status = await limiter.lockouts.failure("t.lock", "slow")
    assert not status.locked and status.failures == 1


async def test_list_and_lift_locks_audited(
    limiter: RateLimiter, clock: ManualClock, audit_log: AuditLog
) -> None:
    lockouts = limiter.lockouts
    for key in ("b", "a"):
        for _ in range(3):
            await lockouts.failure("t.lock", key)
        clock.advance(1)
    locks, now = await lockouts.active_locks(10)
    assert [(lock.rule, lock.key) for lock in locks] == [("t.lock", "b"), ("t.lock", "a")]
    assert locks[0].until - now == 10 * 60 * 1_000_000 - 2_000_000
    assert await lockouts.unlock("t.lock", "b", actor="admin-1")
    assert not await lockouts.unlock("t.lock", "b", actor="admin-1")
    assert audit_log.entries[-1] == (
        "admin-1",
        "lockout.unlocked",
        "lockout:t.lock:b",
        {"rule": "t.lock", "key": "b"},
    )
    assert not (await lockouts.status("t.lock", "b")).locked
    locks, _ = await lockouts.active_locks(10)
    assert [lock.key for lock in locks] == ["a"]
    clock.advance(10 * MINUTE)
    assert (await lockouts.active_locks(10))[0] == []
    assert await lockouts.refresh_gauge() == 0


@pytest.mark.parametrize("seed", range(4), ids=lambda s: f"seed={s}")
async def test_random_sequences_follow_the_pure_model(
    limiter: RateLimiter, clock: ManualClock, catalog: Catalog, seed: int
) -> None:
    rng = random.Random(seed)
    rule = catalog.lockout("t.lock")
    model: dict[str, LockoutState] = {}
    for _ in range(70):
        key = rng.choice(["p", "q"])
        clock.advance(rng.choice([0, 1, 5, 25, 70, 700, 4000]))
        now = round(clock.now() * 1_000_000)
        state = model.get(key, LockoutState())
        if rng.random() < 0.15:
            await limiter.lockouts.success("t.lock", key)
            if key in model:
                model[key] = record_success(state)
            continue
        status = await limiter.lockouts.failure("t.lock", key)
        model[key], _ = record_failure(rule, state, now)
        expected = model[key]
        assert status.locked == expected.locked(now)
        assert status.level == expected.level
        assert status.failures == expected.failures
        observed = await limiter.lockouts.status("t.lock", key)
        assert observed.locked == expected.locked(now)
