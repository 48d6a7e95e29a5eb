"""An admin's change of a site applies to the ingest of this process at once, not after the
site cache's TTL."""

from __future__ import annotations

from collections.abc import Callable

from service.settings import Settings
from tests.tracking.ingest_support import NOW, ORIGIN, batch, harness, page_view

ADMIN = {"Authorization": "Bearer test-admin-key"}


async def test_narrowed_domains_refuse_the_old_origin_at_once(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    async with harness(make_settings, database_url) as h:
        first = await h.send(batch(h.site, [page_view(NOW - 20, f"{ORIGIN}/a")]))
        assert first.status_code == 200, first.text  # the site is now in the ingest's cache
        changed = await h.client.patch(
            f"/admin/sites/{h.site.id}", json={"domains": ["shop.example.org"]}, headers=ADMIN
        )
        assert changed.status_code == 200, changed.text
        # No clock advance: the cached site would still allow the old origin.
        refused = await h.send(batch(h.site, [page_view(NOW - 10, f"{ORIGIN}/b")]))
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["code"] == "origin_not_allowed"
        allowed = await h.send(
            batch(h.site, [page_view(NOW - 5, "https://shop.example.org/c")]),
            origin="https://shop.example.org",
        )
        assert allowed.status_code == 200, allowed.text
