# ruff: noqa: F811
"""The ads tests' rig: the tracking people rig (a started app on a manual clock, over SQLite
with the in-process backends and over the real MariaDB and Redis) configured against a local
Google Ads double, and the upload jobs run the way the worker runs them.

The seal reaches the ads feature through ``service.tracking.lifecycle.on_sealed``; until that
hook calls ``service.ads.sealing.on_sealed`` itself, ``wired_seal`` (autouse) makes it do so, the
one call the seal must make.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import insert, select

from core.jobs import PermanentFailure, RetryLater
from service.ads import sealing
from service.ads.flush import UPLOAD_QUEUE
from service.consent.facility import ConsentFacility
from service.db.tables.ads import ads_attempts, ads_connections, ads_uploads
from service.db.tables.tracking import track_intents, track_sessions
from service.tracking import lifecycle
from tests.ads.google_double import CLIENT_ID, CLIENT_SECRET, DEVELOPER_TOKEN, GoogleAdsDouble
from tests.tracking.people_rig import ADMIN, Rig, make_rig, stack  # noqa: F401

TOKEN_KEY = base64.b64encode(bytes(range(32))).decode()
REFRESH_TOKEN = "1//double-refresh-token-of-the-owner"
CUSTOMER = "1234567890"
ACTION_ID = "987654321"


@pytest.fixture(autouse=True)
def wired_seal(monkeypatch: pytest.MonkeyPatch) -> None:
    async def on_sealed(conn: Any, scope: Any, intent: Any) -> None:
        await sealing.on_sealed(conn, scope, intent)

    monkeypatch.setattr(lifecycle, "on_sealed", on_sealed)


@pytest.fixture
def google() -> Iterator[GoogleAdsDouble]:
    with GoogleAdsDouble() as double:
        yield double


def ads_settings(google: GoogleAdsDouble, **overrides: Any) -> dict[str, Any]:
    return {
        "ads_token_key": TOKEN_KEY,
        "ads_developer_token": DEVELOPER_TOKEN,
        "ads_oauth_client_id": CLIENT_ID,
        "ads_oauth_client_secret": CLIENT_SECRET,
        "ads_oauth_token_url": google.token_url,
        "ads_api_base_url": google.base_url,
        "ads_request_timeout_seconds": 2.0,
        **overrides,
    }


@dataclass
class AdsRig:
    rig: Rig
    google: GoogleAdsDouble

    @property
    def client(self) -> Any:
        return self.rig.client

    @property
    def runtime(self) -> Any:
        return self.rig.runtime

    @property
    def clock(self) -> Any:
        return self.rig.clock

    async def site(self, name: str = "Shop", **fields: Any) -> int:
        return int((await self.rig.site(name, **fields))["id"])

    async def connect(
        self,
        site_id: int,
        *,
        customer: str = "123-456-7890",
        action: str = ACTION_ID,
        token: str | None = REFRESH_TOKEN,
        login: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        body: dict[str, Any] = {"customer_id": customer, "conversion_action": action}
        if token is not None:
            body["refresh_token"] = token
        if login is not None:
            body["login_customer_id"] = login
        return await self.client.put(
            f"/t/sites/{site_id}/ads/connection", json=body, headers=headers or ADMIN
        )

    async def consent(self, subject: str, value: str = "granted") -> None:
        facility = self.runtime.facility(ConsentFacility)
        await facility.record(subject, {"ads": value}, source="banner")

    async def visit(
        self,
        site_id: int,
        *,
        gclid: str | None = None,
        gbraid: str | None = None,
        wbraid: str | None = None,
        subject: str | None = "subject-1",
        consent: str | None = "granted",
        ago: timedelta = timedelta(hours=1),
    ) -> int:
        """A session with a click and the visitor's consent subject, and a phone intent on it;
        returns the intent's id."""
        if subject is not None and consent is not None:
            await self.consent(subject, consent)
        at = self.rig.now() - ago
        async with self.rig.db.begin() as conn:
            session = await conn.execute(
                insert(track_sessions).values(
                    site_id=site_id,
                    visitor_id=f"v_{subject or 'anonymous'}0000",
                    started_at=at,
                    last_seen_at=at,
                    page_views=1,
                    events=1,
                    device="mobile",
                    gclid=gclid,
                    gbraid=gbraid,
                    wbraid=wbraid,
                    consent_subject=subject,
                )
            )
            assert session.inserted_primary_key is not None
            session_id = int(session.inserted_primary_key[0])
            intent = await conn.execute(
                insert(track_intents).values(
                    site_id=site_id,
                    session_id=session_id,
                    kind="phone",
                    target="tel:+905551112233",
                    stamp=f"ev-{session_id}",
                    gclid=gclid,
                    gbraid=gbraid,
                    wbraid=wbraid,
                    status="pending",
                    lead_score=10,
                    created_at=at,
                    updated_at=at,
                )
            )
            assert intent.inserted_primary_key is not None
            return int(intent.inserted_primary_key[0])

    async def seal(self, site_id: int, intent_id: int, amount: str = "1250.50") -> Any:
        answer = await self.client.post(
            f"/t/sites/{site_id}/intents/{intent_id}/seal", json={"amount": amount}, headers=ADMIN
        )
        assert answer.status_code == 200, answer.text
        return answer.json()

    async def sale(self, site_id: int, gclid: str, subject: str = "subject-1", **kw: Any) -> int:
        intent = await self.visit(site_id, gclid=gclid, subject=subject, **kw)
        await self.seal(site_id, intent)
        return intent

    # --- the worker's part -----------------------------------------------------------------
    async def run_jobs(self, limit: int = 100) -> int:
        """Claim the upload jobs due now and run them as the worker does; how many ran."""
        queue = self.runtime.queue
        relay = getattr(queue, "relay", None)
        if relay is not None:
            await relay(worker_id="ads-test")
        handler = self.runtime.handlers.get(UPLOAD_QUEUE).handler
        jobs = await queue.claim([UPLOAD_QUEUE], limit, worker_id="ads-test")
        for job in jobs:
            try:
                await handler(job)
            except RetryLater as later:
                await queue.retry(
                    job,
                    delay=later.after_seconds,
                    consume_attempt=False,
                    error=str(later),
                    outcome="deferred",
                )
            except PermanentFailure as failure:
                await queue.dead_letter(job, error=failure.reason, outcome="permanent")
            else:
                await queue.complete(job)
        return len(jobs)

    async def drain(self) -> int:
        ran = 0
        for _ in range(1000):
            count = await self.run_jobs()
            if not count:
                return ran
            ran += count
        raise AssertionError("the upload jobs never settled")

    async def later(self, seconds: float) -> int:
        self.clock.advance(seconds)
        return await self.drain()

    # --- reading back ------------------------------------------------------------------------
    async def upload(self, site_id: int, intent_id: int) -> Any:
        async with self.rig.db.connect() as conn:
            query = select(ads_uploads).where(
                ads_uploads.c.site_id == site_id, ads_uploads.c.intent_id == intent_id
            )
            return (await conn.execute(query)).first()

    async def uploads(self, site_id: int) -> list[Any]:
        async with self.rig.db.connect() as conn:
            query = (
                select(ads_uploads)
                .where(ads_uploads.c.site_id == site_id)
                .order_by(ads_uploads.c.intent_id)
            )
            return list((await conn.execute(query)).all())

    async def ledger(self, site_id: int, **where: Any) -> list[Any]:
        async with self.rig.db.connect() as conn:
            query = select(ads_attempts).where(ads_attempts.c.site_id == site_id)
            for name, value in where.items():
                query = query.where(ads_attempts.c[name] == value)
            return list((await conn.execute(query.order_by(ads_attempts.c.id))).all())

    async def connection_row(self, site_id: int) -> Any:
        async with self.rig.db.connect() as conn:
            query = select(ads_connections).where(ads_connections.c.site_id == site_id)
            return (await conn.execute(query)).first()

    async def queued(self) -> list[dict[str, Any]]:
        """The upload jobs waiting now (claimed and given back untouched)."""
        queue = self.runtime.queue
        relay = getattr(queue, "relay", None)
        if relay is not None:
            await relay(worker_id="ads-test")
        jobs = await queue.claim([UPLOAD_QUEUE], 10_000, worker_id="ads-test")
        for job in jobs:
            await queue.retry(job, delay=0, consume_attempt=False, error="peek", outcome="deferred")
        return [job.payload for job in jobs]


def value(amount: str) -> Decimal:
    return Decimal(amount)


@pytest.fixture
def make_ads(make_rig: Callable[..., Any], google: GoogleAdsDouble) -> Callable[..., Any]:
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def make(**overrides: Any) -> AsyncIterator[AdsRig]:
        async with make_rig(**ads_settings(google, **overrides)) as rig:
            yield AdsRig(rig, google)

    return make


@pytest.fixture
async def ads(make_ads: Callable[..., Any]) -> AsyncIterator[AdsRig]:
    async with make_ads() as made:
        yield made
