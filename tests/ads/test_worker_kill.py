"""A real ``kervan worker`` killed with SIGKILL in the middle of a batch, then restarted: every
conversion reaches Google exactly once by ``orderId``.

The double records the first batch's conversions and holds its answer, so the kill lands after
Google counted them and before kervan knew. More sales are sealed while no worker runs. The
restarted worker finds the dead batch's rows once their lease ran out and sends them again with
the new ones: Google answers ``ORDER_ID_ALREADY_IN_USE`` for the first batch's (counted as
uploaded) and records the new ones. No order id is ever accepted twice, and every sale ends
uploaded. On SQLite, MariaDB, and MariaDB with the Redis Streams queue.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select

from core.clock import SYSTEM_CLOCK
from service.ads.connections import save_connection
from service.ads.crypto import TokenCipher
from service.ads.sealing import record_seal
from service.backends import redis_backends
from service.consent import store as consent_store
from service.consent.policy import policy_from_settings
from service.db import Database
from service.db.migrate import migrate
from service.db.tables.ads import ads_attempts, ads_uploads
from service.db.tables.tracking import track_intents, track_sessions
from service.db.types import utcnow
from service.queue.base import JobQueue
from service.queue.config import QueueConfig
from service.queue.redis_streams import RedisStreamsQueue
from service.queue.sql import SqlOutbox
from service.settings import Settings
from service.tracking.scope import SiteScope
from service.tracking.sites import create_site
from tests.ads.conftest import REFRESH_TOKEN, TOKEN_KEY
from tests.ads.google_double import CLIENT_ID, CLIENT_SECRET, DEVELOPER_TOKEN, GoogleAdsDouble
from tests.cli_process import spawn_kervan
from tests.conftest import _clear_tables, unique

ROOT = Path(__file__).resolve().parents[2]
FIRST = 30  # sealed before the first worker starts: its batch is the one killed
LATER = 10  # sealed while no worker runs

pytestmark = pytest.mark.slow


class WorkerProcess:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        self._fh = log.open("w")
        self.proc = spawn_kervan(
            ["worker", "--queue", "ads.upload"], cwd=ROOT, env=env, log=self._fh, own_group=False
        )

    def started(self) -> bool:
        return "queue worker started" in self.log.read_text()

    def tail(self) -> str:
        return self.log.read_text()[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self._fh.close()


@dataclass
class Shared:
    kind: str
    db: Database
    queue: JobQueue
    env: dict[str, str]
    site_id: int = 0
    subject: str = "kill-test-visitor"


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def google() -> Iterator[GoogleAdsDouble]:
    with GoogleAdsDouble() as double:
        yield double


@pytest.fixture(params=["sqlite", "mariadb", "mariadb+redis"])
async def shared(
    request: pytest.FixtureRequest, tmp_path: Path, google: GoogleAdsDouble
) -> AsyncIterator[Shared]:
    kind = str(request.param)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KERVAN_")}
    url = (
        f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
        if kind == "sqlite"
        else request.getfixturevalue("mariadb_url")
    )
    db = Database(url)
    if kind == "sqlite":
        await migrate(db)
    else:
        await _clear_tables(db)
    namespace = unique("adskill")
    env.update(
        KERVAN_DATABASE_URL=url,
        KERVAN_REDIS_NAMESPACE=namespace,
        KERVAN_ADS_TOKEN_KEY=TOKEN_KEY,
        KERVAN_ADS_DEVELOPER_TOKEN=DEVELOPER_TOKEN,
        KERVAN_ADS_OAUTH_CLIENT_ID=CLIENT_ID,
        KERVAN_ADS_OAUTH_CLIENT_SECRET=CLIENT_SECRET,
        KERVAN_ADS_OAUTH_TOKEN_URL=google.token_url,
        KERVAN_ADS_API_BASE_URL=google.base_url,
        KERVAN_ADS_REQUEST_TIMEOUT_SECONDS="3",
        # A killed worker's job comes back after 4 s; its batch's lease (the job's 3.6 s
        # limit plus a margin) has run out by then.
        KERVAN_QUEUE_JOB_TIMEOUT_SECONDS="3",
        KERVAN_QUEUE_VISIBILITY_TIMEOUT_SECONDS="4",
        KERVAN_QUEUE_POLL_INTERVAL_SECONDS="0.05",
        KERVAN_QUEUE_SHUTDOWN_GRACE_SECONDS="1",
        KERVAN_LOG_LEVEL="INFO",
    )
    config = QueueConfig(job_timeout=3, visibility_timeout=4)
    queue: JobQueue = SqlOutbox(db, SYSTEM_CLOCK, config)
    backends = None
    if kind == "mariadb+redis":
        redis_url = request.getfixturevalue("redis_url")
        env["KERVAN_REDIS_URL"] = redis_url
        backends = redis_backends(redis_url, namespace)
        assert backends.redis is not None
        queue = RedisStreamsQueue(
            backends.redis,
            backends.key,
            SYSTEM_CLOCK,
            config,
            outbox=SqlOutbox(db, SYSTEM_CLOCK, config),
        )
    made = Shared(kind, db, queue, env)
    await _site(made)
    yield made
    if backends is not None:
        assert backends.redis is not None
        keys = [k async for k in backends.redis.scan_iter(match=f"{namespace}:*")]
        if keys:
            await backends.redis.delete(*keys)
        await backends.close()
    if kind != "sqlite":
        await _clear_tables(db)
    await db.dispose()


async def _site(shared: Shared) -> None:
    """A site connected to the double, and its visitor's granted ads consent."""
    now = utcnow()
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    async with shared.db.begin() as conn:
        site = await create_site(
            conn,
            name="Kill Shop",
            domains=["kill.example"],
            currency="TRY",
            time_zone="Europe/Istanbul",
            now=now,
        )
        shared.site_id = site.id
        scope = SiteScope(site_id=site.id, role="owner", actor="test")
        await save_connection(
            conn,
            scope,
            customer_id="1234567890",
            conversion_action="customers/1234567890/conversionActions/5",
            login_customer_id=None,
            token_ciphertext=TokenCipher(TOKEN_KEY).encrypt(REFRESH_TOKEN, site_id=site.id),
            now=now,
        )
        await consent_store.record(
            conn,
            shared.subject,
            {"ads": "granted"},
            source="banner",
            now=time.time(),
            policy=policy_from_settings(settings),
        )


async def _seal(shared: Shared, count: int, offset: int) -> list[int]:
    """``count`` sales sealed as the seal does it: the upload row and its job in one
    transaction with the confirmed intent."""
    now = utcnow()
    scope = SiteScope(site_id=shared.site_id, role="owner", actor="test")
    intents: list[int] = []
    async with shared.db.begin() as conn:
        session = await conn.execute(
            insert(track_sessions).values(
                site_id=shared.site_id,
                visitor_id=f"v_killvisitor{offset:04d}",
                started_at=now,
                last_seen_at=now,
                device="mobile",
                consent_subject=shared.subject,
            )
        )
        assert session.inserted_primary_key is not None
        for n in range(offset, offset + count):
            made = await conn.execute(
                insert(track_intents).values(
                    site_id=shared.site_id,
                    session_id=session.inserted_primary_key[0],
                    kind="phone",
                    target="tel:+905551112233",
                    stamp=f"kill-{n}",
                    gclid=f"gclid-kill-{n}",
                    status="confirmed",
                    lead_score=0,
                    amount=Decimal("100.00"),
                    currency="TRY",
                    sealed_at=now,
                    sealed_by="test",
                    created_at=now,
                    updated_at=now,
                )
            )
            assert made.inserted_primary_key is not None
            intent_id = int(made.inserted_primary_key[0])
            row = (
                await conn.execute(
                    select(track_intents).where(
                        track_intents.c.site_id == shared.site_id, track_intents.c.id == intent_id
                    )
                )
            ).one()
            assert await record_seal(conn, scope, row, queue=shared.queue) == "pending"
            intents.append(intent_id)
    return intents


async def _rows(shared: Shared) -> list[Any]:
    async with shared.db.connect() as conn:
        query = select(ads_uploads).where(ads_uploads.c.site_id == shared.site_id)
        return list((await conn.execute(query.order_by(ads_uploads.c.intent_id))).all())


async def test_a_worker_killed_mid_batch_never_counts_a_sale_twice(
    shared: Shared, google: GoogleAdsDouble, tmp_path: Path
) -> None:
    first = await _seal(shared, FIRST, 0)
    google.script("delay:60")  # the first batch is recorded, its answer held
    victim = WorkerProcess(shared.env, tmp_path / "victim.log")
    survivor: WorkerProcess | None = None
    try:
        _wait(lambda: len(google.uploads()) >= 1, 90, "the first batch to reach Google")
        held = google.uploads()[0]
        assert held["fault"] == "delay" and held["count"] >= 1
        os.kill(victim.proc.pid, signal.SIGKILL)
        assert victim.proc.wait(10) == -signal.SIGKILL
        counted = sum(google.accepted.values())
        assert counted >= held["count"]  # Google has them; kervan never heard back
        rows = await _rows(shared)
        killed = {r.intent_id for r in rows if r.lease_token is not None}
        assert killed and all(r.status == "pending" for r in rows)  # leased by the dead batch

        later = await _seal(shared, LATER, FIRST)
        survivor = WorkerProcess(shared.env, tmp_path / "survivor.log")
        deadline = time.monotonic() + 60
        while True:
            rows = await _rows(shared)
            if all(r.status == "uploaded" for r in rows):
                break
            assert time.monotonic() < deadline, (
                [(r.intent_id, r.status, r.reason) for r in rows if r.status != "uploaded"],
                survivor.tail(),
            )
            await asyncio.sleep(0.2)
    finally:
        victim.stop()
        if survivor is not None:
            survivor.stop()

    orders = {f"kervan-{shared.site_id}-{i}" for i in first + later}
    assert len(rows) == FIRST + LATER
    assert set(google.accepted) == orders
    assert max(google.accepted.values()) == 1  # no sale counted twice
    # The held batch's rows were sent again and answered as already recorded.
    held_orders = set(held["order_ids"])
    assert held_orders and {f"kervan-{shared.site_id}-{i}" for i in killed} >= held_orders
    again = [r for r in rows if r.order_id in held_orders]
    assert {r.reason for r in again} == {"ORDER_ID_ALREADY_IN_USE"}
    assert all(r.attempts == 2 for r in again)
    assert {r.reason for r in rows} <= {None, "ORDER_ID_ALREADY_IN_USE"}
    async with shared.db.connect() as conn:
        ledger = (
            await conn.execute(
                select(ads_attempts.c.intent_id, ads_attempts.c.attempt, ads_attempts.c.outcome)
                .where(ads_attempts.c.site_id == shared.site_id, ads_attempts.c.kind == "row")
                .order_by(ads_attempts.c.id)
            )
        ).all()
    # The victim wrote nothing for the held batch; the survivor one outcome per row.
    held_ids = {r.intent_id for r in again}
    assert sorted(
        (r.intent_id, r.attempt, r.outcome) for r in ledger if r.intent_id in held_ids
    ) == (sorted((i, 2, "duplicate") for i in held_ids))
