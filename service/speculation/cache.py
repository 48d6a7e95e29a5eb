"""The per-segment answer cache, refreshed in the background, shared between instances.

A request is answered from this process's copy whenever one exists; only the very first request
for a segment and mode on a cold instance waits, and then at most for one computation (single
flight). Every ``speculation_refresh_seconds`` the refresher walks the configured segments: it
takes the segment's refresh lock in the state backend (so one instance at a time refreshes a
segment when Redis is used), re-simulates only when the segment's data version moved, and
publishes the answer there for the other instances, which adopt it on their next round.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

import orjson

from core.clock import Clock
from core.flows.graph import Mode
from core.flows.ranking import Exclusions
from core.flows.rules import RulesConfig, build_rules, url_count
from core.flows.simulate import SimulationConfig, rank_segment
from native import walk
from service.backends import Backends, keys
from service.db import Database
from service.logging import get_logger
from service.overload.monitor import OverloadMonitor
from service.periodic import raise_if_cancelling
from service.settings import Settings
from service.speculation import store
from service.speculation.metrics import CACHE_AGE, REFRESHES, SIMULATION_SECONDS

log = get_logger("kervan.speculation")

CacheKey = tuple[str, str]  # (seg, mode)
_SOON_ATTEMPTS = 20
_SOON_RETRY_SECONDS = 0.5


@dataclass(frozen=True, slots=True)
class Answer:
    seg: str
    mode: str
    body: bytes  # the Speculation Rules JSON, as served
    etag: str  # strong: a digest of the body
    computed_at: float  # wall clock of the last computation or confirmation
    version: int  # the segment's data version the answer was computed from
    prerender: int
    prefetch: int

    def dump(self) -> bytes:
        return orjson.dumps(
            {
                "seg": self.seg,
                "mode": self.mode,
                "body": self.body.decode(),
                "etag": self.etag,
                "computed_at": self.computed_at,
                "version": self.version,
                "prerender": self.prerender,
                "prefetch": self.prefetch,
            }
        )

    @classmethod
    def load(cls, raw: bytes) -> Answer | None:
        try:
            data: dict[str, Any] = orjson.loads(raw)
            return cls(
                seg=str(data["seg"]),
                mode=str(data["mode"]),
                body=str(data["body"]).encode(),
                etag=str(data["etag"]),
                computed_at=float(data["computed_at"]),
                version=int(data["version"]),
                prerender=int(data["prerender"]),
                prefetch=int(data["prefetch"]),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None  # a foreign or older format: recompute rather than fail


def strong_etag(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def simulation_config(settings: Settings) -> SimulationConfig:
    return SimulationConfig(
        steps=settings.speculation_steps,
        sims=settings.speculation_sims,
        seed=settings.speculation_seed,
        top=settings.speculation_prerender_count + settings.speculation_prefetch_count,
        min_score=settings.speculation_min_score,
        start_templates=tuple(settings.speculation_start_paths),
        start_weights=tuple(settings.speculation_start_weights),
    )


def rules_config(settings: Settings) -> RulesConfig:
    return RulesConfig(
        origin=settings.public_origin,
        prerender_count=settings.speculation_prerender_count,
        prefetch_count=settings.speculation_prefetch_count,
        exclusions=Exclusions(settings.speculation_excluded_paths),
        buckets=tuple(settings.speculation_score_buckets),
        tag_prefix=settings.speculation_tag_prefix,
    )


class SpeculationCache:
    """Component: ``start()`` launches the refresher, ``stop()`` ends it."""

    def __init__(self, settings: Settings, db: Database, backends: Backends, clock: Clock) -> None:
        self.settings = settings
        self.db = db
        self.backends = backends
        self.clock = clock
        self.sim_config = simulation_config(settings)
        self.rules_config = rules_config(settings)
        self._answers: dict[CacheKey, Answer] = {}
        self._inflight: dict[CacheKey, asyncio.Future[Answer]] = {}
        self._modes: set[str] = {settings.speculation_mode}
        self._owner = secrets.token_hex(12).encode()
        self._task: asyncio.Task[None] | None = None
        self._soon: dict[str, asyncio.Task[None]] = {}
        #: Degrade mode (set by the feature's setup): periodic refreshes wait while it sheds.
        self.overload: OverloadMonitor | None = None

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        CACHE_AGE.sources.add(self)
        self._task = asyncio.create_task(self._run(), name="speculation-refresher")

    async def stop(self) -> None:
        CACHE_AGE.sources.discard(self)
        tasks = [*self._soon.values(), *([self._task] if self._task is not None else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._task = None
        self._soon.clear()

    def refresh_soon(self, seg: str) -> None:
        """Refresh ``seg`` in the background now (after a bulk import), not at the next round."""
        if seg in self._soon:
            return

        async def run() -> None:
            try:
                # Another instance (or this one's round) may hold the lock with older data;
                # try again shortly until the answers reflect the segment's current version.
                for _ in range(_SOON_ATTEMPTS):
                    await self._refresh_modes(seg)
                    version = await store.segment_version(self.db, seg)
                    held = [self._answers.get((seg, mode)) for mode in sorted(self._modes)]
                    if all(a is not None and a.version >= version for a in held):
                        return
                    await asyncio.sleep(_SOON_RETRY_SECONDS)
            except Exception as exc:
                log.warning("speculation refresh failed", extra={"seg": seg, "error": repr(exc)})
            finally:
                self._soon.pop(seg, None)

        self._soon[seg] = asyncio.create_task(run(), name=f"speculation-refresh-{seg}")

    async def _run(self) -> None:
        # Load (or compile) the kernels off the event loop before the first refresh needs them.
        try:
            await asyncio.to_thread(walk.warm_up)
        except Exception as exc:  # the refreshes below will report it again if it persists
            log.warning("speculation kernels failed to warm up", extra={"error": repr(exc)})
        while True:
            await self.refresh_all()  # never raises: failures are counted and logged per segment
            raise_if_cancelling()
            await asyncio.sleep(self.settings.speculation_refresh_seconds)

    # ---------------------------------------------------------------- reads

    @property
    def answers(self) -> dict[tuple[str, str], Answer]:
        """The answers held, by ``(seg, mode)`` (read only: ``cached`` reads one)."""
        return self._answers

    def cached(self, seg: str, mode: str) -> Answer | None:
        return self._answers.get((seg, mode))

    async def get(self, seg: str, mode: str) -> Answer:
        """The answer for ``seg`` and ``mode``; computed now only if none exists anywhere."""
        key = (seg, mode)
        answer = self._answers.get(key)
        if answer is not None:
            return answer
        self._modes.add(mode)
        return await self._single_flight(key, lambda: self._first_answer(key))

    def cache_ages(self) -> Iterable[tuple[str, str, float]]:
        now = self.clock.now()
        return [
            (seg, mode, max(0.0, now - a.computed_at)) for (seg, mode), a in self._answers.items()
        ]

    async def _single_flight(self, key: CacheKey, make: Callable[[], Awaitable[Answer]]) -> Answer:
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            answer = await make()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody else must log it
            raise
        finally:
            self._inflight.pop(key, None)
        future.set_result(answer)
        return answer

    async def _first_answer(self, key: CacheKey) -> Answer:
        shared = await self._read_shared(key)
        if shared is not None:
            self._answers[key] = shared
            return shared
        answer = await self.refresh(*key)
        if answer is None:  # another instance holds the lock and published nothing yet
            answer = await self._compute(*key)
            self._answers[key] = answer
        return answer

    # ---------------------------------------------------------------- refresh

    async def refresh_all(self) -> None:
        # Under overload the answers held keep being served; they are refreshed later.
        if self.overload is not None and self.overload.skip("speculation_refresh"):
            return
        for seg in self.settings.speculation_segments:
            await self._refresh_modes(seg)

    async def _refresh_modes(self, seg: str) -> None:
        for mode in sorted(self._modes):
            try:
                await self.refresh(seg, mode)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                REFRESHES.labels("failed").inc()
                log.warning(
                    "speculation refresh failed",
                    extra={"seg": seg, "mode": mode, "error": repr(exc)},
                )

    async def refresh(self, seg: str, mode: str) -> Answer | None:
        """One locked refresh of ``seg``/``mode``; the answer now held, None if none exists."""
        key = (seg, mode)
        lock = self._key(keys.SPECULATION_REFRESH_LOCK, key)
        kv = self.backends.kv
        if not await kv.set_if_absent(lock, self._owner, ttl=keys.SPECULATION_REFRESH_LOCK_TTL):
            REFRESHES.labels("busy").inc()
            return self._adopt(key, await self._read_shared(key))
        try:
            version = await store.segment_version(self.db, seg)
            shared = await self._read_shared(key)
            if shared is not None and shared.version == version:
                # Same data, same seed: the simulation would give the same answer.
                shared = replace(shared, computed_at=self.clock.now())
                await self._publish(shared)
                REFRESHES.labels("unchanged").inc()
                return self._adopt(key, shared)
            answer = await self._compute(seg, mode)
            await self._publish(answer)
            REFRESHES.labels("computed").inc()
            return self._adopt(key, answer)
        finally:
            await kv.delete_if_equals(lock, self._owner)

    async def _compute(self, seg: str, mode: str) -> Answer:
        started = time.perf_counter()
        version, edges = await store.segment_edges(self.db, seg)
        routes = await asyncio.to_thread(
            rank_segment,
            edges,
            seg,
            self.sim_config,
            mode=_mode(mode),
            exclusions=self.rules_config.exclusions,
        )
        rules = build_rules(routes, seg, self.rules_config)
        SIMULATION_SECONDS.labels(mode).observe(time.perf_counter() - started)
        body = orjson.dumps(rules)
        return Answer(
            seg=seg,
            mode=mode,
            body=body,
            etag=strong_etag(body),
            computed_at=self.clock.now(),
            version=version,
            prerender=url_count(rules["prerender"]),
            prefetch=url_count(rules["prefetch"]),
        )

    def _adopt(self, key: CacheKey, answer: Answer | None) -> Answer | None:
        """Keep the newer of ``answer`` and this process's copy; return the one kept."""
        current = self._answers.get(key)
        if answer is None:
            return current
        if current is None or answer.computed_at >= current.computed_at:
            self._answers[key] = answer
            return answer
        return current

    # ---------------------------------------------------------------- shared copy

    def _key(self, prefix: str, key: CacheKey) -> str:
        return f"{prefix}:{key[0]}:{key[1]}"

    async def _read_shared(self, key: CacheKey) -> Answer | None:
        raw = await self.backends.kv.get(self._key(keys.SPECULATION_ANSWER, key))
        return Answer.load(raw) if raw is not None else None

    async def _publish(self, answer: Answer) -> None:
        ttl = self.settings.speculation_refresh_seconds * keys.SPECULATION_ANSWER_TTL_PERIODS
        await self.backends.kv.set(
            self._key(keys.SPECULATION_ANSWER, (answer.seg, answer.mode)), answer.dump(), ttl=ttl
        )


def _mode(mode: str) -> Mode:
    return "exact" if mode == "exact" else "montecarlo"
