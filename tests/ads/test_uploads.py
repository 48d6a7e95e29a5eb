"""Sealed sales reach the Google Ads double: the request's real shape, batches per customer and
at most 2,000 per request, every answer classified, the ledger, the breaker, a revoked token."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import insert, select

from service.ads.flush import ensure_flush
from service.ads.wire import order_id
from service.db.tables.ads import ads_uploads
from service.db.tables.tracking import track_intents, track_sessions
from service.db.types import from_timestamp
from service.tracking.scope import SiteScope
from tests.ads.conftest import ACTION_ID, CUSTOMER, REFRESH_TOKEN, AdsRig
from tests.ads.google_double import DEVELOPER_TOKEN
from tests.tracking.people_rig import ADMIN

DAY = 86_400.0


async def test_a_sealed_sale_is_uploaded_in_the_real_wire_format(ads: AdsRig) -> None:
    site = await ads.site("Shop", time_zone="Europe/Istanbul", currency="TRY")
    assert (await ads.connect(site, login="111-222-3333")).status_code == 200
    first = await ads.sale(site, "gclid-one", subject="alice")
    second = await ads.visit(site, wbraid="wbraid-two", subject="bob")
    await ads.seal(site, second, amount="99.90")
    assert (await ads.upload(site, first)).status == "pending"

    assert await ads.drain() == 1  # one job for the site, not one per sale
    [request] = ads.google.uploads()
    assert request["customer_id"] == CUSTOMER and request["version"] == "v26"
    assert request["developer_token"] == DEVELOPER_TOKEN
    assert request["login_customer_id"] == "1112223333"
    assert request["authorization"].startswith("Bearer ya29.double-")
    body = request["body"]
    assert body["partialFailure"] is True and body["validateOnly"] is False
    sealed_at = (await ads.upload(site, first)).conversion_at
    local = sealed_at.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Istanbul"))
    assert body["conversions"] == [
        {
            "gclid": "gclid-one",
            "conversionAction": f"customers/{CUSTOMER}/conversionActions/{ACTION_ID}",
            "conversionDateTime": local.strftime("%Y-%m-%d %H:%M:%S") + "+03:00",
            "conversionValue": 1250.5,
            "currencyCode": "TRY",
            "orderId": f"kervan-{site}-{first}",
            "consent": {"adUserData": "GRANTED"},
        },
        {
            "wbraid": "wbraid-two",
            "conversionAction": f"customers/{CUSTOMER}/conversionActions/{ACTION_ID}",
            "conversionDateTime": local.strftime("%Y-%m-%d %H:%M:%S") + "+03:00",
            "conversionValue": 99.9,
            "currencyCode": "TRY",
            "orderId": f"kervan-{site}-{second}",
            "consent": {"adUserData": "GRANTED"},
        },
    ]
    assert [t["refresh_token"] for t in ads.google.token_requests] == [REFRESH_TOKEN]
    for intent in (first, second):
        row = await ads.upload(site, intent)
        assert (row.status, row.reason, row.attempts) == ("uploaded", None, 1)
        assert row.request_id == request["request_id"] and row.lease_token is None
    assert ads.google.accepted == {f"kervan-{site}-{first}": 1, f"kervan-{site}-{second}": 1}

    # The ledger: the token refresh, the request with Google's request-id, each row.
    ledger = await ads.ledger(site)
    assert [(e.kind, e.outcome) for e in ledger] == [
        ("token", "ok"),
        ("request", "ok"),
        ("row", "uploaded"),
        ("row", "uploaded"),
    ]
    assert ledger[1].request_id == request["request_id"] and ledger[1].batch_size == 2
    assert ledger[1].http_status == 200 and ledger[1].latency_ms is not None
    assert {e.intent_id for e in ledger[2:]} == {first, second}
    assert all(e.request_id == request["request_id"] and e.attempt == 1 for e in ledger[2:])

    summary = (await ads.client.get(f"/t/sites/{site}/ads/summary", headers=ADMIN)).json()
    assert (summary["uploaded"], summary["pending"], summary["total"]) == (2, 0, 2)
    assert summary["connection"]["status"] == "active"
    # Jobs of rows another job's batch uploaded finish at once: nothing left queued.
    assert await ads.queued() == []
    # A second seal later reuses the cached access token: no second refresh.
    await ads.sale(site, "gclid-three", subject="carol")
    await ads.drain()
    assert len(ads.google.token_requests) == 1 and len(ads.google.uploads()) == 2


async def _bulk_sales(ads: AdsRig, site: int, count: int, subject: str = "bulk") -> list[int]:
    """``count`` sealed sales with their upload rows as the seal writes them, in bulk (sealing
    thousands one by one takes minutes here), and the site's upload job."""
    await ads.consent(subject)
    now = from_timestamp(ads.clock.now())
    async with ads.rig.db.begin() as conn:
        session = await conn.execute(
            insert(track_sessions).values(
                site_id=site,
                visitor_id="v_bulkvisitor0000",
                started_at=now,
                last_seen_at=now,
                device="mobile",
                consent_subject=subject,
            )
        )
        assert session.inserted_primary_key is not None
        session_id = session.inserted_primary_key[0]
        rows = [
            {
                "site_id": site,
                "session_id": session_id,
                "kind": "phone",
                "target": "tel:+905551112233",
                "stamp": f"bulk-{site}-{n}",
                "gclid": f"gclid-bulk-{site}-{n}",
                "status": "confirmed",
                "lead_score": 0,
                "amount": Decimal("10.00"),
                "currency": "TRY",
                "sealed_at": now,
                "sealed_by": "test",
                "created_at": now,
                "updated_at": now,
            }
            for n in range(count)
        ]
        await conn.execute(insert(track_intents), rows)
        intents = [
            int(i)
            for i in (
                await conn.execute(
                    select(track_intents.c.id)
                    .where(track_intents.c.site_id == site, track_intents.c.stamp.like("bulk-%"))
                    .order_by(track_intents.c.id)
                )
            ).scalars()
        ]
        uploads = [
            {
                "site_id": site,
                "intent_id": intent,
                "status": "pending",
                "order_id": order_id(site, intent),
                "click_kind": "gclid",
                "click_id": f"gclid-bulk-{site}-{n}",
                "consent_subject": subject,
                "conversion_at": now,
                "value": Decimal("10.00"),
                "currency": "TRY",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
                "updated_at": now,
            }
            for n, intent in enumerate(intents)
        ]
        await conn.execute(insert(ads_uploads), uploads)
        scope = SiteScope(site_id=site, role="admin", actor="test")
        assert await ensure_flush(conn, scope, ads.runtime.queue, now=ads.clock.now())
    return intents


async def test_batches_are_per_customer_and_at_most_2000(ads: AdsRig) -> None:
    big = await ads.site("Big")
    small = await ads.site("Small")
    await ads.connect(big, customer="111-111-1111")
    await ads.connect(small, customer="222-222-2222")
    many = await _bulk_sales(ads, big, 2001)
    few = await _bulk_sales(ads, small, 3, subject="bulk-small")
    await ads.drain()

    big_requests = ads.google.uploads("1111111111")
    small_requests = ads.google.uploads("2222222222")
    assert sorted(r["count"] for r in big_requests) == [1, 2000]
    assert [r["count"] for r in small_requests] == [3]
    assert sorted(o for r in big_requests for o in r["order_ids"]) == sorted(
        f"kervan-{big}-{i}" for i in many
    )
    assert sorted(small_requests[0]["order_ids"]) == sorted(f"kervan-{small}-{i}" for i in few)
    assert set(ads.google.accepted.values()) == {1} and len(ads.google.accepted) == 2004
    assert {row.status for row in await ads.uploads(big)} == {"uploaded"}
    assert {row.status for row in await ads.uploads(small)} == {"uploaded"}
    requests = await ads.ledger(big, kind="request")
    assert sorted(e.batch_size for e in requests) == [1, 2000]


async def test_each_row_outcome_of_a_partial_failure(ads: AdsRig) -> None:
    site = await ads.site()
    await ads.connect(site)
    codes = {
        "g-expired": "EXPIRED_EVENT",
        "g-unparseable": "UNPARSEABLE_GCLID",
        "g-precedes": "CONVERSION_PRECEDES_EVENT",
        "g-exists": "CLICK_CONVERSION_ALREADY_EXISTS",
        "g-recent": "TOO_RECENT_EVENT",
        "g-new-action": "TOO_RECENT_CONVERSION_ACTION",
    }
    intents = {}
    for n, (click, code) in enumerate(codes.items()):
        ads.google.fail_click(click, code)
        intents[click] = await ads.sale(site, click, subject=f"visitor-{n}")
    intents["g-clean"] = await ads.sale(site, "g-clean", subject="visitor-clean")
    await ads.drain()
    assert len(ads.google.uploads()) == 1
    rows = {click: await ads.upload(site, i) for click, i in intents.items()}
    outcome = {click: (r.status, r.reason) for click, r in rows.items()}
    assert outcome == {
        "g-expired": ("failed", "EXPIRED_EVENT"),
        "g-unparseable": ("failed", "UNPARSEABLE_GCLID"),
        "g-precedes": ("failed", "CONVERSION_PRECEDES_EVENT"),
        "g-exists": ("uploaded", "CLICK_CONVERSION_ALREADY_EXISTS"),
        "g-recent": ("pending", "TOO_RECENT_EVENT"),
        "g-new-action": ("pending", "TOO_RECENT_CONVERSION_ACTION"),
        "g-clean": ("uploaded", None),
    }
    six_hours = ads.clock.now() + 6 * 3600
    for click in ("g-recent", "g-new-action"):
        assert rows[click].next_attempt_at.timestamp() == six_hours
    assert rows["g-expired"].message and "window" in rows["g-expired"].message

    listed = await ads.client.get(f"/t/sites/{site}/ads/uploads?status=failed", headers=ADMIN)
    assert {i["intent_id"] for i in listed.json()["items"]} == {
        intents[c] for c in ("g-expired", "g-unparseable", "g-precedes")
    }
    summary = (await ads.client.get(f"/t/sites/{site}/ads/summary", headers=ADMIN)).json()
    assert summary["failed_by_reason"] == {
        "EXPIRED_EVENT": 1,
        "UNPARSEABLE_GCLID": 1,
        "CONVERSION_PRECEDES_EVENT": 1,
    }
    assert summary["pending_by_reason"] == {
        "TOO_RECENT_EVENT": 1,
        "TOO_RECENT_CONVERSION_ACTION": 1,
    }
    assert (summary["uploaded"], summary["pending"], summary["failed"]) == (2, 2, 3)

    # Not before six hours: a minute early nothing is sent.
    await ads.later(6 * 3600 - 60)
    assert len(ads.google.uploads()) == 1
    await ads.later(60)
    assert len(ads.google.uploads()) == 2
    assert ads.google.uploads()[1]["count"] == 2
    for click in ("g-recent", "g-new-action"):
        row = await ads.upload(site, intents[click])
        assert (row.status, row.attempts) == ("uploaded", 2)
    row_log = await ads.ledger(site, intent_id=intents["g-recent"])
    assert [(e.attempt, e.outcome, e.error_code) for e in row_log] == [
        (1, "retry", "TOO_RECENT_EVENT"),
        (2, "uploaded", None),
    ]
    assert set(ads.google.accepted.values()) == {1}


async def test_429_5xx_timeouts_and_dropped_connections_back_off(ads: AdsRig) -> None:
    site = await ads.site()
    await ads.connect(site)
    ads.google.script("429", "500", "timeout:3", "drop", "429:120")
    intent = await ads.sale(site, "gclid-1")
    expected = ["rate_limited", "http_500", "timeout", "network_error"]
    for attempt, reason in enumerate(expected, start=1):
        await ads.drain()
        row = await ads.upload(site, intent)
        assert (row.status, row.reason, row.attempts) == ("pending", reason, attempt)
        wait = row.next_attempt_at.timestamp() - ads.clock.now()
        ceiling = 60.0 * 2 ** (attempt - 1)
        assert ceiling / 2 <= wait <= ceiling  # equal jitter: never straight back
        assert len(ads.google.uploads()) == attempt
        await ads.drain()  # not due yet: nothing is sent
        assert len(ads.google.uploads()) == attempt
        ads.clock.advance(wait)
    await ads.drain()
    row = await ads.upload(site, intent)
    assert (row.reason, row.next_attempt_at.timestamp()) == ("rate_limited", ads.clock.now() + 120)
    await ads.later(120)
    row = await ads.upload(site, intent)
    assert (row.status, row.attempts) == ("uploaded", 6)
    requests = await ads.ledger(site, kind="request")
    assert [e.outcome for e in requests] == [
        "backoff",
        "backoff",
        "timeout",
        "network_error",
        "backoff",
        "ok",
    ]
    assert [e.http_status for e in requests] == [429, 500, None, None, 429, 200]
    assert all(e.request_id for e in requests if e.http_status)
    assert ads.google.accepted == {f"kervan-{site}-{intent}": 1}


async def test_rows_give_up_after_the_attempt_budget(make_ads: Any) -> None:
    async with make_ads(ads_max_attempts=2) as ads:
        site = await ads.site()
        await ads.connect(site)
        ads.google.script("500", "500")
        intent = await ads.sale(site, "gclid-1")
        await ads.drain()
        await ads.later(60)
        row = await ads.upload(site, intent)
        assert (row.status, row.reason, row.attempts) == ("failed", "retries_exhausted", 2)
        assert "http_500" in row.message
        await ads.later(3600)
        assert len(ads.google.uploads()) == 2


async def test_a_revoked_token_pauses_the_site_until_its_owner_reconnects(ads: AdsRig) -> None:
    site = await ads.site()
    await ads.connect(site)
    ads.google.revoke(REFRESH_TOKEN)
    first = await ads.sale(site, "gclid-1")
    second = await ads.sale(site, "gclid-2", subject="subject-2")
    await ads.drain()
    assert ads.google.uploads() == []
    assert [t["fault"] for t in ads.google.token_requests] == ["ok"]  # one refresh, refused
    connection = (await ads.client.get(f"/t/sites/{site}/ads/connection", headers=ADMIN)).json()
    assert (connection["status"], connection["status_reason"]) == ("paused", "token_revoked")
    assert "expired or revoked" in connection["status_message"]
    for intent in (first, second):
        row = await ads.upload(site, intent)
        assert (row.status, row.reason, row.attempts) == ("pending", "connection_paused", 0)
    assert await ads.queued() == []  # no retries burnt while paused
    assert [e.outcome for e in await ads.ledger(site, kind="token")] == ["token_revoked"]
    # A sale sealed while paused waits too, without a request.
    third = await ads.sale(site, "gclid-3", subject="subject-3")
    await ads.later(3600)
    assert ads.google.uploads() == [] and len(ads.google.token_requests) == 1
    assert (await ads.upload(site, third)).reason == "connection_paused"

    assert (await ads.connect(site, token="1//the-owner-granted-access-again")).status_code == 200
    await ads.drain()
    assert [r["count"] for r in ads.google.uploads()] == [3]
    assert {r.status for r in await ads.uploads(site)} == {"uploaded"}
    connection = (await ads.client.get(f"/t/sites/{site}/ads/connection", headers=ADMIN)).json()
    assert (connection["status"], connection["status_reason"]) == ("active", None)
    paused = await ads.rig.audit("ads.paused")
    assert [a["details"]["reason"] for a in paused] == ["token_revoked"]


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("revoked", "token_revoked"),
        ("403", "permission_denied:USER_PERMISSION_DENIED"),
        ("400:NO_CONVERSION_ACTION_FOUND", "connection_invalid:NO_CONVERSION_ACTION_FOUND"),
    ],
)
async def test_google_refusing_the_connection_pauses_it(
    ads: AdsRig, fault: str, reason: str
) -> None:
    site = await ads.site()
    await ads.connect(site)
    ads.google.script(fault)
    intent = await ads.sale(site, "gclid-1")
    await ads.drain()
    row = await ads.upload(site, intent)
    assert (row.status, row.reason, row.attempts) == ("pending", "connection_paused", 0)
    assert (await ads.connection_row(site)).status_reason == reason
    [request] = await ads.ledger(site, kind="request")
    assert (request.outcome, request.error_code) == ("pause", reason)
    await ads.connect(site, token=None)
    await ads.drain()
    assert (await ads.upload(site, intent)).status == "uploaded"


async def test_an_expired_access_token_is_refreshed(ads: AdsRig) -> None:
    site = await ads.site()
    await ads.connect(site)
    ads.google.script("expired")
    intent = await ads.sale(site, "gclid-1")
    await ads.drain()
    await ads.later(1)
    assert (await ads.upload(site, intent)).status == "uploaded"
    assert len(ads.google.token_requests) == 2


async def test_the_breaker_of_one_customer_leaves_the_others_alone(make_ads: Any) -> None:
    async with make_ads(ads_breaker_min_calls=2, ads_breaker_open_seconds=300) as ads:
        down = await ads.site("Down")
        up = await ads.site("Up")
        await ads.connect(down, customer="333-333-3333")
        await ads.connect(up, customer="444-444-4444")
        ads.google.script("500", "500", customer="3333333333")
        stuck = await ads.sale(down, "gclid-down")
        await ads.drain()
        await ads.later(60)  # the second failure opens the breaker
        assert len(ads.google.uploads("3333333333")) == 2
        await ads.later(120)  # due again, but the breaker is open: no request, no attempt
        assert len(ads.google.uploads("3333333333")) == 2
        assert (await ads.upload(down, stuck)).attempts == 2
        fine = await ads.sale(up, "gclid-up", subject="other")
        await ads.drain()
        assert (await ads.upload(up, fine)).status == "uploaded"
        await ads.later(300)  # half-open: a probe goes through and succeeds
        assert len(ads.google.uploads("3333333333")) == 3
        assert (await ads.upload(down, stuck)).status == "uploaded"


async def test_a_new_sale_does_not_wait_behind_a_six_hour_retry(ads: AdsRig) -> None:
    site = await ads.site()
    await ads.connect(site)
    ads.google.fail_click("g-recent", "TOO_RECENT_EVENT")
    recent = await ads.sale(site, "g-recent", subject="first")
    await ads.drain()
    asleep = await ads.connection_row(site)
    assert asleep.flush_key is not None
    assert asleep.flush_wakes_at.timestamp() == ads.clock.now() + 6 * 3600
    ads.clock.advance(60)
    fresh = await ads.sale(site, "g-fresh", subject="second")
    takeover = (await ads.connection_row(site)).flush_key
    assert takeover not in (None, asleep.flush_key)  # a job that looks now
    await ads.drain()
    assert (await ads.upload(site, fresh)).status == "uploaded"
    assert (await ads.upload(site, recent)).status == "pending"
    assert [r["count"] for r in ads.google.uploads()] == [1, 1]
    await ads.later(6 * 3600)  # both jobs wake; the superseded one does nothing
    assert (await ads.upload(site, recent)).status == "uploaded"
    assert [r["count"] for r in ads.google.uploads()] == [1, 1, 1]
    assert (await ads.connection_row(site)).flush_key is None
    assert await ads.queued() == []
