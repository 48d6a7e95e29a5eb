"""Tracked page views feed the speculation flows of the site's segment."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select

from service.db.tables.flows import flow_edges
from service.settings import Settings
from service.speculation import store
from tests.tracking.ingest_support import NOW, Harness, batch, click, harness, page_view


async def _all_edges(h: Harness) -> list[str]:
    async with h.db.connect() as conn:
        return list((await conn.execute(select(flow_edges.c.seg))).scalars())


async def test_page_views_feed_the_sites_segment(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    seg = "en-d"
    async with harness(make_settings, database_url, config={"speculation_segment": seg}) as h:
        await h.send(
            batch(
                h.site,
                [
                    page_view(NOW - 30, "https://example.com/"),
                    click(NOW - 25),
                    page_view(NOW - 20, "https://example.com/urun/1?renk=kirmizi"),
                ],
            )
        )
        # The next batch pairs its first page with the last one of the one before.
        await h.send(batch(h.site, [page_view(NOW - 10, "https://example.com/iletisim")]))
        await h.ingest.feed.flush()
        edges = await store.list_edges(h.db, seg, limit=10)
        assert [(e.from_path, e.to_path, e.count) for e in edges] == [
            ("/", "/urun/1", 1),
            ("/urun/1", "/iletisim", 1),
        ]
        assert edges[0].probability == 1.0


async def test_the_segment_comes_from_the_sites_config(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    for config, seg in (
        ({"speculation_segment": "tr-m"}, "tr-m"),
        ({"speculation_segment": "far-too-long"}, None),
        # Not a served segment: no rules answer could read its counts, so none are written.
        ({"speculation_segment": "xx-m"}, None),
        # No segment: the flows are the deployment's, a site feeds them only when it names one.
        ({}, None),
    ):
        async with harness(make_settings, database_url, config=config) as h:
            before = await _all_edges(h)
            await h.send(
                batch(
                    h.site,
                    [
                        page_view(NOW - 20, "https://example.com/a"),
                        page_view(NOW - 10, "https://example.com/b"),
                    ],
                )
            )
            await h.ingest.feed.flush()
            assert h.ingest.feed.pending() == {}
            if seg is not None:
                edges = await store.list_edges(h.db, seg, limit=10)
                assert [(e.from_path, e.to_path) for e in edges] == [("/a", "/b")]
            # A segment the flows cannot hold is skipped, never a failed ingest.
            assert await store.list_edges(h.db, "far-too-long"[:8], limit=10) == []
            assert await store.list_edges(h.db, "xx-m", limit=10) == []
            if seg is None:
                assert await _all_edges(h) == before
