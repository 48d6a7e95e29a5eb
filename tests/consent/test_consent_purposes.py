from __future__ import annotations

import pytest

from core.consent.durations import Ttl, parse_ttl
from core.consent.purposes import build_registry, normalize_region, parse_region_overrides
from core.errors import ValidationFailed

from .helpers import at


def test_default_lifetimes_follow_the_policy() -> None:
    registry = build_registry()
    assert registry.ttl("analytics", None) == Ttl(months=6)
    assert registry.ttl("ads", None) == Ttl(months=3)
    assert registry.ttl("personalization", None) == Ttl(months=12)
    assert registry.banner_purposes == ("analytics", "ads", "personalization")
    assert set(registry.names) == {"analytics", "ads", "personalization", "whatsapp", "email"}


@pytest.mark.parametrize(
    ("start", "ttl", "expected"),
    [
        (at(2026, 1, 15), Ttl(months=6), at(2026, 7, 15)),
        (at(2026, 11, 15), Ttl(months=3), at(2027, 2, 15)),
        # Day clamped to the end of a shorter month, leap and non-leap.
        (at(2026, 8, 31), Ttl(months=6), at(2027, 2, 28)),
        (at(2027, 8, 31), Ttl(months=6), at(2028, 2, 29)),
        (at(2026, 1, 15), Ttl(days=90), at(2026, 4, 15)),
        (at(2026, 1, 15), Ttl(hours=36), at(2026, 1, 17, 0)),
    ],
)
def test_lifetimes_are_added_on_the_calendar(start: float, ttl: Ttl, expected: float) -> None:
    assert ttl.expires_at(start) == expected


def test_lifetime_keeps_sub_second_precision() -> None:
    start = at(2026, 1, 15) + 0.25
    assert Ttl(months=1).expires_at(start) == at(2026, 2, 15) + 0.25


@pytest.mark.parametrize(
    ("text", "ttl"), [("6mo", Ttl(months=6)), ("90d", Ttl(days=90)), (" 12h ", Ttl(hours=12))]
)
def test_parse_ttl(text: str, ttl: Ttl) -> None:
    assert parse_ttl(text) == ttl
    assert parse_ttl(ttl.spec()) == ttl


@pytest.mark.parametrize("text", ["", "6", "six months", "0mo", "-1d", "6y", "1mo2d"])
def test_parse_ttl_rejects(text: str) -> None:
    with pytest.raises(ValidationFailed):
        parse_ttl(text)


def test_region_override_with_subdivision_fallback() -> None:
    registry = build_registry(["FR.analytics=13mo", "US-CA.ads=30d", "US.ads=12mo"])
    assert registry.ttl("analytics", "FR") == Ttl(months=13)
    assert registry.ttl("analytics", "DE") == Ttl(months=6)
    assert registry.ttl("analytics", None) == Ttl(months=6)
    assert registry.ttl("ads", "US-CA") == Ttl(days=30)
    assert registry.ttl("ads", "US-NY") == Ttl(months=12)
    assert registry.ttl("ads", "FR") == Ttl(months=3)


def test_region_override_parsing_errors() -> None:
    with pytest.raises(ValidationFailed):
        parse_region_overrides(["FR:analytics=13mo"])
    with pytest.raises(ValidationFailed):
        parse_region_overrides(["FR.analytics"])
    with pytest.raises(ValidationFailed) as info:
        build_registry(["FR.cookies=13mo"])
    assert info.value.details["purposes"] == ["cookies"]


def test_unknown_purpose_lists_every_offender() -> None:
    registry = build_registry()
    with pytest.raises(ValidationFailed) as info:
        registry.require(["analytics", "zzz", "aaa"])
    assert info.value.details["unknown"] == ["aaa", "zzz"]


@pytest.mark.parametrize(("raw", "normal"), [("de", "DE"), (" us-ca ", "US-CA"), ("", None)])
def test_normalize_region(raw: str, normal: str | None) -> None:
    assert normalize_region(raw) == normal


@pytest.mark.parametrize("raw", ["Germany", "D", "DE_BY", "12", "DE-TOOLONG"])
def test_normalize_region_rejects(raw: str) -> None:
    with pytest.raises(ValidationFailed):
        normalize_region(raw)
