"""The server's garbage-collector policy (``service/gc_policy.py``): CPython's automatic full
collections off, one every ``gc_full_collect_seconds`` instead, young collections rarer, every
pause measured."""

from __future__ import annotations

import asyncio
import gc
import signal
from collections.abc import Callable, Iterator

import pytest

from service import gc_policy, worker_process
from service.app import create_app
from service.db import Database
from service.db.migrate import migrate
from service.gc_policy import NO_AUTOMATIC_FULL, YOUNG_THRESHOLD, FullCollections
from service.metrics import REGISTRY
from service.settings import Settings, SettingsError, load_settings


@pytest.fixture
def collector() -> Iterator[None]:
    """The collector's thresholds and callbacks as they were, after the test."""
    thresholds = gc.get_threshold()
    callbacks = list(gc.callbacks)
    yield
    gc.set_threshold(*thresholds)
    gc.callbacks[:] = callbacks


def _pauses(generation: int) -> float:
    """Seconds of pauses of ``generation`` observed so far, as /metrics reports them."""
    value = REGISTRY.get_sample_value(
        "kervan_gc_pause_seconds_sum", {"generation": str(generation)}
    )
    return value or 0.0


def test_tune_stops_automatic_full_collections_and_measures_every_pause(
    collector: None,
) -> None:
    _, middle, _ = gc.get_threshold()
    gc_policy.tune(300)
    gc_policy.tune(300)  # idempotent
    assert gc.get_threshold() == (YOUNG_THRESHOLD, middle, NO_AUTOMATIC_FULL)
    assert gc.callbacks.count(gc_policy._timer) == 1
    before = _pauses(2), _pauses(0)
    gc.collect()
    gc.collect(0)
    assert _pauses(2) > before[0]
    assert _pauses(0) > before[1]


def test_zero_keeps_cpythons_policy_but_still_measures(collector: None) -> None:
    thresholds = gc.get_threshold()
    gc_policy.tune(0)
    assert gc.get_threshold() == thresholds
    assert gc_policy._timer in gc.callbacks


async def test_full_collections_run_on_their_rhythm_after_the_first_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []
    monkeypatch.setattr(gc, "collect", lambda generation=2: calls.append(generation) or 0)
    full = FullCollections(60)
    await full.step()  # at start: start-up has just collected
    assert calls == []
    await full.step()
    await full.step()
    assert calls == [2, 2]


async def test_a_server_app_applies_the_policy_for_its_lifetime(
    make_settings: Callable[..., Settings], collector: None
) -> None:
    app = create_app(make_settings(gc_full_collect_seconds="120"), freeze_heap=True)
    try:
        async with app.router.lifespan_context(app):
            assert gc.get_threshold()[2] == NO_AUTOMATIC_FULL
            tasks = {t.get_name() for t in asyncio.all_tasks()}
            assert FullCollections.name in tasks
        tasks = {t.get_name() for t in asyncio.all_tasks()}
        assert FullCollections.name not in tasks
    finally:
        gc.unfreeze()


def test_the_setting_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KERVAN_GC_FULL_COLLECT_SECONDS", "-1")
    with pytest.raises(SettingsError, match="KERVAN_GC_FULL_COLLECT_SECONDS"):
        load_settings()


async def test_the_worker_process_applies_the_policy_until_it_stops(
    make_settings: Callable[..., Settings], collector: None
) -> None:
    settings = make_settings(gc_full_collect_seconds="120")
    db = Database(settings.database_url)
    await migrate(db)
    await db.dispose()
    loop = asyncio.get_running_loop()
    served = loop.create_task(worker_process._serve(settings, None))
    try:
        for _ in range(500):
            if FullCollections.name in {t.get_name() for t in asyncio.all_tasks()}:
                break
            await asyncio.sleep(0.01)
        else:
            pytest.fail("the worker never started its full collections")
        assert gc.get_threshold()[2] == NO_AUTOMATIC_FULL
        signal.raise_signal(signal.SIGTERM)  # what stops `kervan worker`
        assert await asyncio.wait_for(served, 10) == 0
        assert FullCollections.name not in {t.get_name() for t in asyncio.all_tasks()}
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        served.cancel()
        gc.unfreeze()
