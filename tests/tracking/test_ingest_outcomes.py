"""``POST /t/sync``: every event answered on its own, batch-level refusals in the error
envelope, and nothing stored by a refused batch or a rejected event."""

from __future__ import annotations

from collections.abc import Callable

import orjson
import pytest

from service.routes.tracking_ingest import SyncOut
from service.settings import Settings
from tests.tracking.ingest_support import (
    NOW,
    ORIGIN,
    USER_AGENT,
    batch,
    click,
    harness,
    intent,
    page_view,
)


async def test_each_event_has_its_outcome_and_bad_ones_spare_their_neighbours(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    async with harness(make_settings, database_url, tracking_max_event_bytes=512) as h:
        good_page = page_view(NOW - 10, "https://example.com/urun/1", title="Ürün 1")
        good_click = click(NOW - 8)
        good_intent = intent(NOW - 5, "phone", "tel:+90 555 111 22 33")
        events = [
            good_page,
            {"id": "short", "type": "click", "ts": NOW * 1000, "url": "https://example.com/"},
            good_click,
            {**click(NOW - 7), "type": "unknown"},
            "not an object",
            {**click(NOW - 6), "props": {"x": "y" * 600}},
            good_intent,
            dict(good_click),  # the same id again in this batch
            {**intent(NOW - 4, "whatsapp", "https://wa.me/905551112233"), "intent": None},
        ]
        answer = await h.send(batch(h.site, events))
        assert answer.status_code == 200, answer.text
        body = SyncOut.model_validate(answer.json())
        outcomes = [(r.outcome, r.reason) for r in body.results]
        assert outcomes == [
            ("accepted", None),
            ("rejected", "invalid_id"),
            ("accepted", None),
            ("rejected", "invalid_type"),
            ("rejected", "invalid_event"),
            ("rejected", "too_large"),
            ("accepted", None),
            ("duplicate", None),
            ("rejected", "invalid_intent"),
        ]
        assert [r.id for r in body.results][:3] == [good_page["id"], "short", good_click["id"]]
        assert body.results[4].id is None
        assert all(r.message for r in body.results if r.outcome == "rejected")
        assert (body.accepted, body.duplicates, body.rejected) == (3, 1, 5)
        stored = await h.events()
        assert [e.event_id for e in stored] == [
            good_page["id"],
            good_click["id"],
            good_intent["id"],
        ]
        assert [e.kind for e in stored] == ["page_view", "click", "intent"]
        assert stored[0].path == "/urun/1" and stored[0].props == {"title": "Ürün 1"}
        assert stored[2].name == "phone" and stored[2].props == {"target": "+905551112233"}
        # Each stored event has its dedup row, and only they.
        assert sorted(r.event_id for r in await h.event_ids()) == sorted(e.event_id for e in stored)
        (session,) = await h.sessions()
        assert body.session == str(session.id)
        assert (session.page_views, session.events, session.device) == (1, 3, "mobile")


async def test_batch_level_problems_refuse_the_whole_batch(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    async with harness(
        make_settings,
        database_url,
        tracking_max_batch_events=3,
        tracking_max_batch_bytes=4096,
    ) as h:
        ok = batch(h.site, [page_view(NOW)])

        async def post(content: bytes, content_type: str = "application/json") -> tuple[int, str]:
            answer = await h.client.post(
                "/t/sync",
                content=content,
                headers={"Origin": ORIGIN, "Content-Type": content_type},
            )
            return answer.status_code, answer.json()["error"]["code"]

        assert await post(b"{not json") == (400, "malformed_json")
        assert await post(b"") == (400, "bad_request")
        assert await post(b"[]") == (422, "validation_failed")
        assert await post(orjson.dumps(ok), "application/xml") == (415, "unsupported_media_type")
        assert await post(b'{"site": "' + b"x" * 5000 + b'"}') == (413, "payload_too_large")
        too_many = batch(h.site, [page_view(NOW) for _ in range(4)])
        assert await post(orjson.dumps(too_many)) == (422, "validation_failed")
        no_events = {k: v for k, v in ok.items() if k != "events"}
        answer = await h.send(no_events)
        assert answer.status_code == 422
        assert answer.json()["error"]["details"] == [
            {"field": "body.events", "message": "must be an array of events"}
        ]
        unknown = dict(ok, site="st_" + "A" * 24)
        answer = await h.send(unknown)
        assert (answer.status_code, answer.json()["error"]["code"]) == (404, "unknown_site")
        for origin in (
            None,
            "null",
            "http://example.com",
            "https://example.com.evil.net",
            "https://evil.net",
            "https://sub.example.com",
            "https://example.com:8443",
            "https://EXAMPLE.com",
        ):
            answer = await h.send(ok, origin=origin)
            assert answer.status_code == 403, origin
            assert answer.json()["error"]["code"] == "origin_not_allowed"
            assert "access-control-allow-origin" not in answer.headers
        assert await h.events() == [] and await h.event_ids() == []
        # sendBeacon's text/plain is read as JSON too; every listed domain is an origin.
        beacon = await h.client.post(
            "/t/sync",
            content=orjson.dumps(ok),
            headers={
                "Origin": "https://www.example.com",
                "Content-Type": "text/plain;charset=UTF-8",
                "User-Agent": USER_AGENT,
            },
        )
        assert beacon.status_code == 200 and beacon.json()["accepted"] == 1
        local = await h.send(batch(h.site, [page_view(NOW)]), origin="http://localhost:8080")
        assert local.status_code == 200


async def test_a_refused_batch_from_an_allowed_origin_can_be_read_by_the_page(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    async with harness(make_settings, database_url) as h:
        answer = await h.send({"site": h.site.public_key, "events": "no"})
        assert answer.status_code == 422
        assert answer.headers["access-control-allow-origin"] == ORIGIN
        refused = await h.send({"site": h.site.public_key}, origin="https://evil.net")
        assert refused.status_code == 422
        assert "access-control-allow-origin" not in refused.headers


@pytest.mark.parametrize("policy", ["tracking.site", "tracking.ip"])
async def test_batches_are_rate_limited_per_site_and_per_address(
    make_settings: Callable[..., Settings], database_url: str, policy: str
) -> None:
    async with harness(
        make_settings, database_url, ratelimit_policies=f"{policy}=2/minute burst 2"
    ) as h:
        statuses = [(await h.send(batch(h.site, [page_view(NOW)]))).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        refused = await h.send(batch(h.site, [page_view(NOW)]))
        assert refused.json()["error"]["code"] == "rate_limited"
        assert policy in refused.json()["error"]["details"]["policies"]
        assert "retry-after" in refused.headers
        assert len(await h.events()) == 2
