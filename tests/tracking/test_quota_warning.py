# ruff: noqa: F811, RUF001  (fixtures from people_rig.py are parameters; Turkish dotless i)
"""Quota warnings to a site's owners: early (80 %) and used up (100 %), one per site, month,
kind and level, by e-mail in each owner's language and by Telegram to owners with a chat,
queued in the transaction of the batch that reached the level; exactly one under concurrent
batches of two processes; again the next month."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from sqlalchemy import select

from core.tracking.quota import month_end, month_of
from service.db.tables.tracking import track_usage
from service.metrics import REGISTRY
from service.tracking.ingest_metrics import QUOTA_NOTICES, QUOTA_WARNINGS
from tests.conftest import running_client
from tests.tracking.ingest_support import intent, page_view
from tests.tracking.people_rig import Rig, make_rig, stack  # noqa: F401

MAIL = {
    "tracking_smtp_host": "127.0.0.1",
    "tracking_smtp_port": 9,  # never called: no worker runs, the tests read the queue
    "tracking_smtp_security": "none",
    "tracking_smtp_from": "kervan <quota@kervan.test>",
    "ratelimit_policies": "tracking.ip=100000/minute burst 100000; "
    "tracking.site=100000/minute burst 100000",
}


def warnings(kind: str, level: str) -> float:
    return QUOTA_WARNINGS.labels(kind, level)._value.get()


def notices(channel: str) -> float:
    return QUOTA_NOTICES.labels(channel)._value.get()


async def queued(rig: Rig, queue: str) -> list[tuple[str, dict[str, Any]]]:
    """The jobs queued on ``queue`` since the last call, as (key, payload), by key."""
    runner = rig.runtime.queue
    assert runner is not None
    relay = getattr(runner, "relay", None)
    if relay is not None:  # Redis: jobs enqueued in a transaction wait in the SQL outbox
        await relay(worker_id="quota-test")
    claimed = await runner.claim([queue], 1000, worker_id="quota-test")
    for job in claimed:
        await runner.complete(job)
    return sorted((job.key, job.payload) for job in claimed)


async def quota_jobs(rig: Rig, queue: str) -> list[tuple[str, dict[str, Any]]]:
    return [(k, p) for k, p in await queued(rig, queue) if ":quota:" in k]


async def owner(rig: Rig, site_id: int, email: str, language: str, chat: str | None) -> None:
    await rig.person(email, chat_id=chat, language=language, name=email.split("@")[0])
    await rig.member(site_id, email, "owner")


async def usage_row(rig: Rig, site_id: int) -> Any:
    async with rig.db.connect() as conn:
        return (
            await conn.execute(
                select(track_usage).where(
                    track_usage.c.site_id == site_id,
                    track_usage.c.month == month_of(rig.clock.now()),
                )
            )
        ).one()


class Script:
    """A site's script: batches to ``POST /t/sync`` of one app."""

    def __init__(self, client: httpx.AsyncClient, site: dict[str, Any], now: float) -> None:
        self.client = client
        self.site = site
        self.domain = site["domains"][0]
        self.now = now
        self.sent = 0

    def url(self) -> str:
        return f"https://{self.domain}/"

    async def send(self, events: list[dict[str, Any]], visitor: str = "") -> dict[str, Any]:
        self.sent += 1
        answer = await self.client.post(
            "/t/sync",
            json={
                "site": self.site["public_key"],
                "visitor": visitor or f"v_quotawarn{self.sent:011d}",
                "events": events,
            },
            headers={"Origin": f"https://{self.domain}"},
        )
        if answer.status_code == 429:  # the whole batch refused: the quota was used up
            assert answer.json()["error"]["code"] == "quota_exceeded"
            return {"accepted": 0, "rejected": len(events), "results": []}
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    async def views(self, count: int, visitor: str = "") -> dict[str, Any]:
        return await self.send(
            [page_view(self.now - 100 + n, self.url()) for n in range(count)], visitor
        )

    async def calls(self, count: int) -> dict[str, Any]:
        return await self.send(
            [
                intent(self.now - 50 + n, "phone", f"tel:+9055511122{n:02d}", url=self.url())
                for n in range(count)
            ]
        )


async def test_owners_are_warned_once_in_their_language(make_rig: Any) -> None:
    async with make_rig(**MAIL) as rig:
        site = await rig.site("Örnek Mağaza", config={"monthly_events": 10})
        await owner(rig, site["id"], "ayse@example.com", "tr", "111")
        await owner(rig, site["id"], "hans@example.com", "de", None)
        await owner(rig, site["id"], "jane@example.com", "en", "333")
        await rig.person("ed@example.com", chat_id="444")
        await rig.member(site["id"], "ed@example.com", "editor")
        await queued(rig, "mail")  # the invitations
        early, mails, chats = warnings("events", "early"), notices("email"), notices("telegram")
        script = Script(rig.client, site, rig.clock.now())

        await script.views(7)  # 70 %: nothing yet
        assert await quota_jobs(rig, "mail") == [] and await quota_jobs(rig, "telegram") == []
        assert (await usage_row(rig, site["id"])).warned_events == 0

        await script.views(1)  # 80 %
        month = month_of(rig.clock.now())
        sent = await quota_jobs(rig, "mail")
        assert [p["to"] for _, p in sent] == [
            "ayse@example.com",
            "hans@example.com",
            "jane@example.com",
        ]
        by_address = {p["to"]: p for _, p in sent}
        tr, de, en = (by_address[f"{n}@example.com"] for n in ("ayse", "hans", "jane"))
        assert tr["subject"] == "kervan: Örnek Mağaza aylık olay kotasında %80 seviyesine ulaştı"
        assert de["subject"] == (
            "kervan: Örnek Mağaza hat 80 % des monatlichen Kontingents für Ereignisse verbraucht"
        )
        assert en["subject"] == "kervan: Örnek Mağaza has used 80 % of its monthly events quota"
        assert tr["text"].startswith("Merhaba ayse,") and "8 tanesini" in tr["text"]
        assert de["text"].startswith("Hallo hans,") and "8 von 10 Ereignisse" in de["text"]
        assert en["text"].startswith("Hello jane,") and "used 8 of its 10 events" in en["text"]
        assert month == "2026-05"
        assert "2026-06-01 00:00 UTC" in en["text"] and "01.06.2026 00:00 UTC" in de["text"]
        # Telegram to the owners with a chat (not to the editor), in their language.
        chats_sent = await quota_jobs(rig, "telegram")
        assert sorted((p["chat_id"], p["text"]) for _, p in chats_sent) == [
            ("111", tr["text"]),
            ("333", en["text"]),
        ]
        keys = [k for k, _ in sent + chats_sent]
        assert all(f":quota:{site['id']}:{month}:events:80:" in k for k in keys)
        assert warnings("events", "early") == early + 1
        assert (notices("email"), notices("telegram")) == (mails + 3, chats + 2)
        assert (await usage_row(rig, site["id"])).warned_events == 80

        await script.views(1)  # 90 %: warned already
        assert await quota_jobs(rig, "mail") == [] and await quota_jobs(rig, "telegram") == []
        assert warnings("events", "early") == early + 1

        # The next month starts over, and warns again.
        rig.clock.set(month_end(rig.clock.now()) + 10)
        script.now = rig.clock.now()
        await script.views(9)
        again = await quota_jobs(rig, "mail")
        assert len(again) == 3 and all(month_of(rig.clock.now()) in k for k, _ in again)
        assert warnings("events", "early") == early + 2


async def test_used_up_warnings_for_events_and_intents(make_rig: Any) -> None:
    async with make_rig(**MAIL) as rig:
        site = await rig.site("Shop", config={"monthly_events": 10, "monthly_intents": 5})
        await owner(rig, site["id"], "jane@example.com", "en", None)
        await queued(rig, "mail")
        used_up = warnings("events", "used_up")
        early_intents = warnings("intents", "early")
        script = Script(rig.client, site, rig.clock.now())

        await script.calls(4)  # intents at 80 %, events at 40 %
        [(key, sent)] = await quota_jobs(rig, "mail")
        assert ":intents:80:" in key
        assert sent["subject"] == (
            "kervan: Shop has used 80 % of its monthly intents (phone and WhatsApp clicks) quota"
        )
        assert "no new intents are made" in sent["text"]
        assert warnings("intents", "early") == early_intents + 1

        answer = await script.calls(2)  # one intent fits: used up; the other is refused
        assert [r.get("warning") for r in answer["results"]] == [None, "intent_quota_exceeded"]
        [(key, sent)] = await quota_jobs(rig, "mail")
        assert ":intents:100:" in key
        assert sent["subject"] == (
            "kervan: Shop has used up its monthly intents (phone and WhatsApp clicks) quota"
        )
        assert "Clicks are still stored as events" in sent["text"]

        # Events jump from 60 % past 80 % straight to used up: one warning, the used-up one.
        answer = await script.views(6)
        assert answer["accepted"] == 4 and answer["rejected"] == 2
        [(key, sent)] = await quota_jobs(rig, "mail")
        assert ":events:100:" in key
        assert sent["subject"] == "kervan: Shop has used up its monthly events quota"
        assert "New events are refused until the count starts over." in sent["text"]
        row = await usage_row(rig, site["id"])
        assert (row.events, row.intents, row.warned_events, row.warned_intents) == (10, 5, 100, 100)
        assert warnings("events", "used_up") == used_up + 1


async def test_without_a_channel_the_warning_is_marked_but_nothing_queued(make_rig: Any) -> None:
    async with make_rig(telegram_bot_token=None) as rig:
        site = await rig.site("Quiet", config={"monthly_events": 5})
        await owner(rig, site["id"], "jane@example.com", "en", "333")
        await Script(rig.client, site, rig.clock.now()).views(5)
        assert (await usage_row(rig, site["id"])).warned_events == 100
        assert await quota_jobs(rig, "mail") == [] and await quota_jobs(rig, "telegram") == []


@asynccontextmanager
async def second_process(rig: Rig) -> AsyncIterator[httpx.AsyncClient]:
    """Another app on the same database, queue and clock: its own caches, pools and writer."""
    async with running_client(rig.runtime.settings, clock=rig.clock) as client:
        yield client


async def test_exactly_one_warning_under_concurrent_batches_of_two_processes(
    make_rig: Any,
) -> None:
    async with make_rig(**MAIL) as rig, second_process(rig) as other:
        site = await rig.site("Busy", config={"monthly_events": 100})
        await owner(rig, site["id"], "jane@example.com", "en", "333")
        await queued(rig, "mail")
        early, used_up = warnings("events", "early"), warnings("events", "used_up")
        mails = notices("email")
        now = rig.clock.now()
        scripts = [Script(rig.client, site, now), Script(other, site, now)]
        await scripts[0].views(1, "v_quotabusy00000000000")  # the month's row exists

        async def flood(sizes: list[int], first: int) -> list[dict[str, Any]]:
            return list(
                await asyncio.gather(
                    *(
                        scripts[n % 2].views(size, f"v_quotabusy{first + n:011d}")
                        for n, size in enumerate(sizes)
                    )
                )
            )

        # To exactly 80 %: whichever transaction gets there, one of them raises the warning.
        answers = await flood([5] * 15 + [4], 1)
        assert sum(a["accepted"] for a in answers) == 79
        [(key, _)] = await quota_jobs(rig, "mail")
        assert ":events:80:" in key
        assert warnings("events", "early") == early + 1
        # On to 100 % and past it (those events are refused): one used-up warning.
        answers = await flood([5] * 6, 100)
        assert sum(a["accepted"] for a in answers) == 20
        assert sum(a["rejected"] for a in answers) == 10
        [(key, _)] = await quota_jobs(rig, "mail")
        assert ":events:100:" in key
        assert len(await quota_jobs(rig, "telegram")) == 2
        # Raised once each, across both processes (one registry in this test process).
        assert warnings("events", "early") == early + 1
        assert warnings("events", "used_up") == used_up + 1
        assert notices("email") == mails + 2
        row = await usage_row(rig, site["id"])
        assert (row.events, row.warned_events) == (100, 100)


def test_the_metrics_have_no_per_site_labels() -> None:
    labels = {
        m.name: {k for s in m.samples for k in s.labels}
        for m in REGISTRY.collect()
        if m.name.startswith("kervan_tracking_quota_")
    }
    assert labels == {
        "kervan_tracking_quota_refusals": {"kind"},
        "kervan_tracking_quota_warnings": {"kind", "level"},
        "kervan_tracking_quota_notices": {"channel"},
    }
