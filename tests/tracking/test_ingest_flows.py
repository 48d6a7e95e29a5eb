"""Tracked page views feed the speculation flows of the site's segment."""

from __future__ import annotations

from collections.abc import Callable

from service.settings import Settings
from service.speculation import store
from tests.tracking.ingest_support import NOW, batch, click, harness, page_view


async def test_page_views_feed_the_sites_segment(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    async with harness(make_settings, database_url) as h:
        seg = f"site-{h.site.id}"
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
    ):
        async with harness(make_settings, database_url, config=config) as h:
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
