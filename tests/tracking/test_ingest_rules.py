"""The ingest's pure rules: the envelope, each event's checks, intent targets, device types,
attribution, session forming and lead scores."""

from __future__ import annotations

from typing import Any

import pytest

from core.errors import ValidationFailed
from core.tracking.attribution import DIRECT, attribute, own_hosts, referrer_source
from core.tracking.device import device_type
from core.tracking.events import (
    Duplicate,
    Event,
    EventRules,
    Rejected,
    check_events,
    clock_offset,
)
from core.tracking.quota import QuotaState, month_end, month_of
from core.tracking.score import (
    DEFAULT_WEIGHTS,
    Signals,
    is_contact_path,
    lead_score,
    weights_from_config,
)
from core.tracking.sessions import SessionDraft, place_events
from core.tracking.targets import normalize_phone, normalize_target
from core.tracking.wire import parse_envelope

NOW = 1_796_126_400.0  # 2026-12-01 12:00 UTC
HOSTS = own_hosts(["example.com", "www.example.com", "localhost:8080"])
RULES = EventRules(now=NOW, max_event_bytes=2048, max_age_seconds=6 * 86_400)


def envelope(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "site": "st_abcdefghijklmnopqrstuvwx",
        "visitor": "v_abcdefghijklmnop",
        "events": [],
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not ...}


def test_the_envelope_names_every_bad_field_and_ignores_unknown_ones() -> None:
    parsed = parse_envelope(
        envelope(
            sent_at=NOW * 1000,
            consent={"analytics": True, "ads": None, "subject": "anon_42"},
            context={"url": "https://example.com/", "user_agent_hint": "tablet", "x": 1},
            landing={"url": "https://example.com/?gclid=a", "referrer": None},
            future_field={"anything": True},
        ),
        max_events=10,
    )
    assert (parsed.consent_subject, parsed.device_hint) == ("anon_42", "tablet")
    assert parsed.landing is not None and parsed.landing.url == "https://example.com/?gclid=a"
    with pytest.raises(ValidationFailed) as refused:
        parse_envelope(
            envelope(
                site="st_short",
                visitor="visitor",
                events={},
                sent_at="now",
                consent={"analytics": "yes", "subject": "bad subject"},
                context={"user_agent_hint": "phone", "language": 5},
                landing=[],
            ),
            max_events=10,
        )
    fields = {d["field"] for d in refused.value.details}
    assert fields == {
        "body.site",
        "body.visitor",
        "body.events",
        "body.sent_at",
        "body.consent.analytics",
        "body.consent.subject",
        "body.context.user_agent_hint",
        "body.context.language",
        "body.landing",
    }
    bodies: list[Any] = [[], "x", None, envelope(site=...), envelope(events=...)]
    for body in bodies:
        with pytest.raises(ValidationFailed):
            parse_envelope(body, max_events=10)
    # A trailing newline is no part of a key (Python's "$" would let it through).
    with pytest.raises(ValidationFailed):
        parse_envelope(envelope(site="st_abcdefghijklmnopqrstuvwx\n"), max_events=10)
    with pytest.raises(ValidationFailed) as too_many:
        parse_envelope(envelope(events=[{}] * 11), max_events=10)
    assert "at most 10 events" in too_many.value.message


def _event(**fields: Any) -> dict[str, Any]:
    base = {"id": "event-0001", "type": "click", "ts": NOW * 1000, "url": "https://example.com/a"}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not ...}


def test_each_event_is_judged_alone_with_a_reason() -> None:
    cases: list[tuple[Any, str]] = [
        ("not an object", "invalid_event"),
        (_event(id="short"), "invalid_id"),
        (_event(id="bad id with spaces"), "invalid_id"),
        (_event(id=...), "invalid_id"),
        (_event(type="pageview"), "invalid_type"),
        (_event(ts="yesterday"), "invalid_ts"),
        (_event(ts=True), "invalid_ts"),
        (_event(ts=-5), "invalid_ts"),
        (_event(ts=(NOW - 7 * 86_400) * 1000), "too_old"),
        (_event(url="ftp://example.com/"), "invalid_field"),
        (_event(url="/relative"), "invalid_field"),
        (_event(url=...), "invalid_field"),
        (_event(name=""), "invalid_field"),
        (_event(name="x" * 65), "invalid_field"),
        (_event(name="tab\there"), "invalid_field"),
        (_event(type="custom"), "invalid_field"),
        (_event(type="custom", name="n", props=[1]), "invalid_field"),
        (
            _event(
                type="custom",
                name="n",
                props={"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": 1}}}}}}}}},
            ),
            "invalid_field",
        ),
        (_event(type="page_view", title=5), "invalid_field"),
        (_event(type="intent"), "invalid_intent"),
        (_event(type="intent", intent={"kind": "sms", "target": "tel:1"}), "invalid_intent"),
        (_event(type="intent", intent={"kind": "phone", "target": "tel:abc"}), "invalid_target"),
        (
            _event(type="intent", intent={"kind": "whatsapp", "target": "https://evil.net/9055"}),
            "invalid_target",
        ),
        (
            _event(
                type="intent",
                intent={
                    "kind": "whatsapp",
                    "target": "https://wa.me/905551112233",
                    "ref": "k7x2qw",
                },
            ),
            "invalid_ref",
        ),
        (
            _event(
                type="intent",
                intent={"kind": "phone", "target": "tel:+905551112233", "ref": "K7X2QW"},
            ),
            "invalid_ref",
        ),
        (_event(title="x" * 3000), "too_large"),
    ]
    for raw, reason in cases:
        (checked,) = check_events([raw], RULES)
        assert isinstance(checked, Rejected), raw
        assert checked.reason == reason, (raw, checked)
        assert checked.message


def test_valid_events_with_their_stored_form_and_duplicates_in_the_batch() -> None:
    raws = [
        _event(
            id="page-0001", type="page_view", title="T" * 300, url="https://example.com/p/q?x=1"
        ),
        _event(id="click-001", name="cta-hero"),
        _event(id="custom-01", type="custom", name="form_submit", props={"form": "contact"}),
        _event(
            id="intent-01",
            type="intent",
            intent={"kind": "whatsapp", "target": "https://wa.me/905551112233", "ref": "K7X2QW"},
        ),
        _event(id="click-001", name="again"),  # the same id again: a duplicate
        _event(id="bad-id-then", type="nope"),
        _event(id="bad-id-then", name="fixed"),  # after a rejected one: judged on its own
        {"id": "unknown-fields", "type": "click", "ts": NOW * 1000, "url": "https://e.x/", "z": 1},
    ]
    checked = check_events(raws, RULES)
    kinds = [type(c).__name__ for c in checked]
    assert kinds == ["Event", "Event", "Event", "Event", "Duplicate", "Rejected", "Event", "Event"]
    page, clicked, custom, intent = (c for c in checked[:4] if isinstance(c, Event))
    assert (page.path, page.title) == ("/p/q", "T" * 200)
    assert clicked.name == "cta-hero" and custom.props == {"form": "contact"}
    assert intent.intent is not None
    assert (intent.intent.target, intent.intent.ref) == ("+905551112233", "K7X2QW")
    assert isinstance(checked[4], Duplicate) and checked[4].id == "click-001"


def test_event_times_follow_the_servers_clock() -> None:
    # The visitor's clock is an hour behind: sent_at says so, and the events are corrected.
    offset = clock_offset(NOW, (NOW - 3600) * 1000)
    rules = EventRules(now=NOW, max_event_bytes=2048, max_age_seconds=86_400, clock_offset=offset)
    (checked,) = check_events([_event(ts=(NOW - 3600 - 30) * 1000)], rules)
    assert isinstance(checked, Event) and checked.ts == pytest.approx(NOW - 30)
    # A clock ahead without sent_at: never later than the batch itself.
    (ahead,) = check_events([_event(ts=(NOW + 600) * 1000)], RULES)
    assert isinstance(ahead, Event) and ahead.ts == NOW


@pytest.mark.parametrize(
    ("kind", "raw", "expected"),
    [
        ("phone", "tel:+90 (555) 111-22-33", "+905551112233"),
        ("phone", "tel:0090-555-111-22-33", "+905551112233"),
        ("phone", "tel:05551112233;ext=12", "05551112233"),
        ("phone", "TEL:%2B49 30 1234567", "+49301234567"),
        ("phone", "tel:000", None),
        ("phone", "mailto:a@b.c", None),
        (
            "whatsapp",
            "https://wa.me/905551112233?text=Merhaba%20(ref%3A%20K7X2QW)",
            "+905551112233",
        ),
        ("whatsapp", "https://api.whatsapp.com/send?phone=905551112233&text=x", "+905551112233"),
        ("whatsapp", "https://web.whatsapp.com/send?phone=%2B905551112233", "+905551112233"),
        ("whatsapp", "whatsapp://send?phone=905551112233", "+905551112233"),
        (
            "whatsapp",
            "https://chat.whatsapp.com/AbCdEf123456",
            "https://chat.whatsapp.com/AbCdEf123456",
        ),
        (
            "whatsapp",
            "https://www.whatsapp.com/joinchat/AbCdEf12",
            "https://chat.whatsapp.com/AbCdEf12",
        ),
        ("whatsapp", "https://wa.me/message/ABCDEF123", "https://wa.me/message/ABCDEF123"),
        ("whatsapp", "+90 555 111 22 33", "+905551112233"),
        ("whatsapp", "https://wa.me.evil.net/905551112233", None),
        ("whatsapp", "https://wa.me/", None),
    ],
)
def test_intent_targets_have_one_spelling(kind: Any, raw: str, expected: str | None) -> None:
    assert normalize_target(kind, raw) == expected


def test_phone_numbers_used_by_the_call_matcher() -> None:
    assert normalize_phone("+90 532 123 45 67") == "+905321234567"
    assert normalize_phone("not a number") is None


@pytest.mark.parametrize(
    ("user_agent", "hint", "expected"),
    [
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) Mobile/15E148", None, "mobile"),
        (
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) Chrome/126.0 Mobile Safari/537.36",
            None,
            "mobile",
        ),
        ("Mozilla/5.0 (Linux; Android 13; SM-X200) Chrome/126.0 Safari/537.36", None, "tablet"),
        ("Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X)", None, "tablet"),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/126.0", None, "desktop"),
        # iPadOS asks for desktop pages: the script's hint knows better.
        ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) Safari/605.1.15", "tablet", "tablet"),
        (
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "mobile",
            "bot",
        ),
        ("Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/126.0 Safari/537.36", None, "bot"),
        ("python-httpx/0.27", None, "bot"),
        (None, None, "other"),
        ("Mozilla/5.0 (Linux; Android 12; CUBOT X30) Mobile Safari", None, "mobile"),
    ],
)
def test_device_types(user_agent: str | None, hint: str | None, expected: str) -> None:
    assert device_type(user_agent, hint) == expected


def test_attribution_from_tags_click_ids_and_referrers() -> None:
    tagged = attribute(
        "https://example.com/?utm_source=news&utm_medium=email&utm_campaign=dec&utm_term=t",
        "https://www.google.com/",
        HOSTS,
    )
    assert (tagged.source, tagged.medium, tagged.campaign, tagged.term) == (
        "news",
        "email",
        "dec",
        "t",
    )
    assert tagged.tagged and tagged.referrer == "https://www.google.com/"
    ad = attribute("https://example.com/l?gbraid=GB1&gclid=G1&wbraid=WB1", None, HOSTS)
    assert (ad.source, ad.medium) == ("google", "cpc")
    assert ad.click is not None and (ad.click.kind, ad.click.value) == ("gclid", "G1")
    assert ad.click.dropped == ("wbraid", "gbraid")
    ios = attribute("https://example.com/l?gbraid=GB1&wbraid=WB1", None, HOSTS)
    assert ios.click is not None and (ios.click.kind, ios.click.dropped) == ("wbraid", ("gbraid",))
    assert attribute("https://example.com/?msclkid=m1", None, HOSTS).campaign_key == (
        "bing",
        "cpc",
        None,
    )
    assert referrer_source("https://www.google.com.tr/search?q=x", HOSTS) == ("google", "organic")
    assert referrer_source("https://yandex.com.tr/", HOSTS) == ("yandex", "organic")
    assert referrer_source("https://l.facebook.com/l.php", HOSTS) == ("facebook", "social")
    assert referrer_source("https://t.co/abc", HOSTS) == ("twitter", "social")
    assert referrer_source("https://mail.google.com/", HOSTS) == ("mail.google.com", "referral")
    assert referrer_source("https://blog.partner.net/post", HOSTS) == (
        "blog.partner.net",
        "referral",
    )
    # The site's own pages are no source; nor is nothing.
    assert referrer_source("https://www.example.com/other", HOSTS) is None
    assert referrer_source("http://localhost:8080/", HOSTS) is None
    assert referrer_source(None, HOSTS) is None
    direct = attribute("https://example.com/page", "https://example.com/", HOSTS)
    assert (direct.source, direct.medium, direct.tagged) == (DIRECT, "(none)", False)


def _page(ts: float, url: str = "https://example.com/", index: int = 0, **kw: Any) -> Event:
    path = url.split("example.com", 1)[1].split("?")[0] or "/"
    return Event(index, f"ev-{ts:.0f}-{index}", "page_view", ts, url, path, **kw)


def test_sessions_split_on_inactivity_and_on_a_new_campaign() -> None:
    fallback = attribute(None, None, HOSTS)
    events = [
        _page(NOW, "https://example.com/?utm_source=a&utm_campaign=x", 0),
        _page(NOW + 60, "https://example.com/p", 1),  # same session, keeps source a
        _page(NOW + 60 + 1801, "https://example.com/q", 2),  # 30 min idle: new session
        _page(NOW + 60 + 1900, "https://example.com/?utm_source=b&utm_campaign=y", 3),
        _page(NOW + 60 + 1950, "https://example.com/?gclid=G1", 4),  # another click id
        _page(NOW + 60 + 1960, "https://example.com/?gclid=G1", 5),  # the same one: continues
    ]
    placed = place_events(
        list(reversed(events)), None, timeout_seconds=1800, hosts=HOSTS, fallback=fallback
    )
    sessions = []
    for p in placed:
        if p.session not in sessions:
            sessions.append(p.session)
    assert [s.attribution.source for s in sessions] == ["a", DIRECT, "b", "google"]
    assert [s.page_views for s in sessions] == [2, 1, 1, 2]
    assert [s.returning for s in sessions] == [False, True, True, True]
    assert sessions[0].landing_path == "/" and sessions[0].last_seen_at == NOW + 60


def test_a_new_session_without_a_source_takes_the_landing_pages() -> None:
    landing = attribute("https://example.com/?utm_source=ads&gclid=G9", None, HOSTS)
    stored = SessionDraft(
        id=7,
        started_at=NOW - 7200,
        last_seen_at=NOW - 3600,
        page_views=3,
        events=3,
        attribution=landing,
        landing_path="/",
        returning=False,
        stored=True,
    )
    (placed,) = place_events(
        [_page(NOW, "https://example.com/later")],
        stored,
        timeout_seconds=1800,
        hosts=HOSTS,
        fallback=landing,
    )
    assert placed.session is not stored and placed.session.returning
    assert placed.session.attribution.source == "ads"
    assert placed.session.attribution.click is not None
    # Within the timeout the stored session simply continues.
    (continued,) = place_events(
        [_page(NOW - 3000, "https://example.com/x")],
        stored,
        timeout_seconds=1800,
        hosts=HOSTS,
        fallback=landing,
    )
    assert continued.session is stored and stored.added_page_views == 1


def test_lead_scores_from_session_signals() -> None:
    cold = Signals(
        page_views=1, seconds_on_site=5, ads_click=False, returning=False, contact_page=False
    )
    hot = Signals(
        page_views=9, seconds_on_site=400, ads_click=True, returning=True, contact_page=True
    )
    assert lead_score(cold) == DEFAULT_WEIGHTS["base"] == 10
    assert lead_score(hot) == 100
    warm = Signals(
        page_views=3, seconds_on_site=90, ads_click=True, returning=False, contact_page=False
    )
    assert lead_score(warm) == 10 + 8 + 10 + 20
    weights = weights_from_config({"ads_click": 50, "base": -3, "nope": 9, "returning": True})
    assert weights["ads_click"] == 50 and weights["base"] == 10 and "nope" not in weights
    assert lead_score(warm, weights) == 10 + 8 + 10 + 50
    assert is_contact_path("/tr/iletisim") and is_contact_path("/de/kontakt.html")
    assert is_contact_path("/bize-ula%C5%9F%C4%B1n") and not is_contact_path("/contacts-old/x")
    assert not is_contact_path("/urun/1") and not is_contact_path(None)


def test_months_and_quota_headers() -> None:
    assert month_of(NOW) == "2026-12"
    assert month_end(NOW) == 1_798_761_600.0  # 2027-01-01 00:00 UTC
    state = QuotaState(limit=100, used=130, reset_at=month_end(NOW))
    assert state.remaining == 0
    assert state.headers() == {
        "X-Quota-Limit": "100",
        "X-Quota-Remaining": "0",
        "X-Quota-Reset": "1798761600",
    }
    assert state.retry_after(NOW) == 1_798_761_600 - int(NOW)
