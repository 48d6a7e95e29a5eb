"""Sessions formed on the server: inactivity and a new campaign split them, the landing
page's attribution is kept for later pages, device, country and click ids."""

from __future__ import annotations

from collections.abc import Callable

from service.settings import Settings
from tests.tracking.ingest_support import NOW, batch, click, harness, page_view

LANDING = "https://example.com/kampanya?utm_source=google&utm_medium=cpc&utm_campaign=kis&gclid=G-1"


async def test_attribution_stays_with_the_session_its_landing_made(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    async with harness(make_settings, database_url) as h:
        landing = {"url": LANDING, "referrer": "https://www.google.com/"}
        await h.send(
            batch(
                h.site,
                [page_view(NOW - 100, LANDING, referrer="https://www.google.com/")],
                landing=landing,
                consent={"analytics": True, "ads": True, "subject": "anon_visitor_1"},
            )
        )
        h.clock.advance(600)
        later = batch(
            h.site,
            [
                page_view(NOW + 500, "https://example.com/urun/7", referrer="https://example.com/"),
                click(NOW + 520),
            ],
            landing=landing,
        )
        answer = (await h.send(later)).json()
        (session,) = await h.sessions()
        assert answer["session"] == str(session.id)
        assert (session.source, session.medium, session.campaign) == ("google", "cpc", "kis")
        assert session.gclid == "G-1" and session.wbraid is None and session.gbraid is None
        assert session.landing_page == "/kampanya"
        assert session.referrer == "https://www.google.com/"
        assert (session.page_views, session.events) == (2, 3)
        assert session.started_at.timestamp() == NOW - 100
        assert session.last_seen_at.timestamp() == NOW + 520
        assert session.consent_subject == "anon_visitor_1"
        assert session.device == "mobile"


async def test_inactivity_and_a_new_campaign_start_new_sessions(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    async with harness(make_settings, database_url, tracking_session_timeout_minutes=30) as h:
        organic = "https://www.google.com.tr/"
        await h.send(batch(h.site, [page_view(NOW - 50, referrer=organic)]))
        h.clock.advance(31 * 60)
        # Back after 31 minutes through an internal page: a new, direct session; the
        # script's landing (same as the first page) is organic and is kept.
        now = h.clock.now()
        await h.send(
            batch(
                h.site,
                [page_view(now - 1, "https://example.com/b")],
                landing={"url": "https://example.com/", "referrer": organic},
            )
        )
        await h.send(
            batch(h.site, [page_view(now, "https://example.com/?utm_source=news&utm_campaign=c2")])
        )
        # The same campaign again is the same session; a click id is a new one.
        await h.send(
            batch(
                h.site,
                [
                    page_view(now + 1, "https://example.com/x?utm_source=news&utm_campaign=c2"),
                    page_view(now + 2, "https://example.com/y?gbraid=GB&wbraid=WB"),
                ],
            )
        )
        sessions = await h.sessions()
        assert [(s.source, s.medium, s.campaign) for s in sessions] == [
            ("google", "organic", None),
            ("google", "organic", None),
            ("news", "(none)", "c2"),
            ("google", "cpc", None),
        ]
        assert [s.page_views for s in sessions] == [1, 1, 2, 1]
        assert [s.landing_page for s in sessions] == ["/", "/b", "/", "/y"]
        # One click id kept (wbraid before gbraid); the page view records the one dropped.
        assert (sessions[3].wbraid, sessions[3].gbraid) == ("WB", None)
        last = (await h.events())[-1]
        assert last.props == {"click_ids": {"kept": "wbraid", "dropped": ["gbraid"]}}


async def test_country_only_from_a_trusted_proxy_and_device_from_the_browser(
    make_settings: Callable[..., Settings], database_url: str
) -> None:
    desktop = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0"
    for proxies, expected in ((["127.0.0.0/8"], "TR"), ([], None)):
        async with harness(
            make_settings,
            database_url,
            tracking_country_header="CF-IPCountry",
            trusted_proxies=proxies,
        ) as h:
            body = batch(h.site, [page_view(NOW)])
            body["context"] = {"url": "https://example.com/"}  # no hint
            answer = await h.send(body, headers={"CF-IPCountry": "tr", "User-Agent": desktop})
            assert answer.status_code == 200
            (session,) = await h.sessions()
            assert (session.country, session.device) == (expected, "desktop")
