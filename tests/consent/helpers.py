"""Shared builders for the consent tests."""

from __future__ import annotations

from datetime import UTC, datetime

from core.consent.banner import BannerPolicy, build_banner_policy
from core.consent.model import ConsentState
from core.consent.purposes import PurposeRegistry, build_registry
from core.consent.transitions import apply_choices

REGISTRY: PurposeRegistry = build_registry()
BANNER: BannerPolicy = build_banner_policy("1")
# 2026-01-15 12:00:00 UTC: mid-month so calendar-month additions are unambiguous.
T0 = datetime(2026, 1, 15, 12, 0, 0, tzinfo=UTC).timestamp()


def at(year: int, month: int, day: int, hour: int = 12) -> float:
    return datetime(year, month, day, hour, 0, 0, tzinfo=UTC).timestamp()


def granted_state(
    *purposes: str,
    subject: str = "anon-1",
    now: float = T0,
    value: str = "granted",
    registry: PurposeRegistry = REGISTRY,
    banner: BannerPolicy = BANNER,
    region: str | None = None,
) -> ConsentState:
    return apply_choices(
        ConsentState(subject),
        dict.fromkeys(purposes, value),
        source="banner",
        now=now,
        registry=registry,
        banner=banner,
        region=region,
    ).state
