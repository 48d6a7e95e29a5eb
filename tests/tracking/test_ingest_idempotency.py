"""``Idempotency-Key``: the same key and body replay the first answer without storing
anything again; the same key with another body is refused; an expired key starts over."""

from __future__ import annotations

from collections.abc import Callable

from service.settings import Settings
from tests.tracking.ingest_support import NOW, batch, click, harness, page_view


async def test_a_key_replays_its_first_answer(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    async with harness(make_settings, database_url, tracking_idempotency_hours=2) as h:
        body = batch(h.site, [page_view(NOW - 10), click(NOW - 5), {"id": "bad"}])
        first = await h.send(body, headers={"Idempotency-Key": "batch-0001"})
        assert first.status_code == 200 and "idempotent-replayed" not in first.headers
        replay = await h.send(body, headers={"Idempotency-Key": "batch-0001"})
        assert replay.status_code == 200
        assert replay.headers["idempotent-replayed"] == "true"
        assert replay.json() == first.json()  # "accepted" again, not "duplicate"
        assert replay.headers["access-control-allow-origin"] == "https://example.com"
        assert replay.headers["x-quota-remaining"] == first.headers["x-quota-remaining"]
        assert len(await h.events()) == 2
        (usage,) = await h.usage()
        assert usage.events == 2

        other_body = batch(h.site, [click(NOW - 1)])
        reused = await h.send(other_body, headers={"Idempotency-Key": "batch-0001"})
        assert reused.status_code == 422
        assert reused.json()["error"]["code"] == "idempotency_key_reused"
        assert len(await h.events()) == 2

        # Past the replay window the key is free again: the batch runs (its events are
        # duplicates now) and its new answer is what the key replays from then on.
        h.clock.advance(2 * 3600 + 1)
        late = await h.send(body, headers={"Idempotency-Key": "batch-0001"})
        assert late.status_code == 200 and "idempotent-replayed" not in late.headers
        assert [r["outcome"] for r in late.json()["results"]] == [
            "duplicate",
            "duplicate",
            "rejected",
        ]
        replayed = await h.send(body, headers={"Idempotency-Key": "batch-0001"})
        assert replayed.json() == late.json()
        assert replayed.headers["idempotent-replayed"] == "true"

        # Keys are per site and must be printable ASCII.
        bad = await h.send(body, headers={"Idempotency-Key": "with space"})
        assert bad.status_code == 422
        assert bad.json()["error"]["details"][0]["field"] == "header.Idempotency-Key"


async def test_a_batch_without_new_events_is_remembered_too(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    async with harness(make_settings, database_url) as h:
        body = batch(h.site, [{"id": "x"}])
        first = await h.send(body, headers={"Idempotency-Key": "k-rejected"})
        assert first.json()["rejected"] == 1
        replay = await h.send(body, headers={"Idempotency-Key": "k-rejected"})
        assert replay.headers["idempotent-replayed"] == "true"
        assert replay.json() == first.json()
