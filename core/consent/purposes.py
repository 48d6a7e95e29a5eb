"""The registry of consent purposes, their lifetimes and the per-region overrides.

One registry answers "which purposes exist", "how long does a choice for this purpose last in
this region" and "does the cookie banner ask for it". Refusals use the same lifetime as consents so
a refused purpose is not asked again on every visit.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from core.consent.durations import Ttl, parse_ttl
from core.errors import ValidationFailed

#: A region code in either case: ISO 3166-1 country, optionally with a subdivision. Matched
#: before upper-casing, so letters that upper-case into ASCII ("ß" -> "SS") are not codes.
REGION_CODE = r"[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,4})?"
_REGION = re.compile(REGION_CODE)


@dataclass(frozen=True, slots=True)
class Purpose:
    name: str
    ttl: Ttl
    # Messaging permissions (WhatsApp, e-mail) are collected by opt-in forms and channels, not by
    # the cookie banner, so they never appear in a banner's needs_prompt list.
    in_banner: bool = True
    description: str = ""


DEFAULT_PURPOSES: tuple[Purpose, ...] = (
    Purpose("analytics", Ttl(months=6), description="Audience measurement"),
    Purpose("ads", Ttl(months=3), description="Advertising storage and measurement"),
    Purpose("personalization", Ttl(months=12), description="Personalised content"),
    Purpose("whatsapp", Ttl(months=24), in_banner=False, description="Marketing via WhatsApp"),
    Purpose("email", Ttl(months=24), in_banner=False, description="Marketing via e-mail"),
)


def normalize_region(region: str | None) -> str | None:
    """Upper-case ISO 3166 style region (``DE``, ``US-CA``); ``None`` or empty means unknown."""
    if region is None:
        return None
    value = region.strip()
    if not value:
        return None
    if _REGION.fullmatch(value) is None:
        raise ValidationFailed(
            "region must be a country code, optionally with a subdivision (e.g. 'DE', 'US-CA')",
            details={"region": region},
        )
    return value.upper()


@dataclass(frozen=True)
class PurposeRegistry:
    purposes: Mapping[str, Purpose]
    # region -> purpose -> lifetime; a subdivision (US-CA) falls back to its country (US).
    region_ttls: Mapping[str, Mapping[str, Ttl]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for region, overrides in self.region_ttls.items():
            unknown = sorted(set(overrides) - set(self.purposes))
            if unknown:
                raise ValidationFailed(
                    f"region override {region} names unknown purposes",
                    details={"region": region, "purposes": unknown},
                )

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.purposes)

    @property
    def banner_purposes(self) -> tuple[str, ...]:
        return tuple(name for name, purpose in self.purposes.items() if purpose.in_banner)

    def require(self, names: Iterable[str]) -> None:
        """Raise ValidationFailed listing every name that is not a registered purpose."""
        unknown = sorted({name for name in names if name not in self.purposes})
        if unknown:
            raise ValidationFailed(
                "unknown consent purpose",
                details={"unknown": unknown, "allowed": sorted(self.purposes)},
            )

    def ttl(self, purpose: str, region: str | None) -> Ttl:
        self.require([purpose])
        for candidate in _region_candidates(region):
            override = self.region_ttls.get(candidate, {}).get(purpose)
            if override is not None:
                return override
        return self.purposes[purpose].ttl


def _region_candidates(region: str | None) -> tuple[str, ...]:
    if not region:
        return ()
    country = region.split("-", 1)[0]
    return (region,) if country == region else (region, country)


def parse_region_overrides(items: Iterable[str]) -> dict[str, dict[str, Ttl]]:
    """Parse settings items like ``"DE.analytics=13mo"`` into ``{"DE": {"analytics": Ttl}}``."""
    result: dict[str, dict[str, Ttl]] = {}
    for raw in items:
        item = raw.strip()
        if not item:
            continue
        key, sep, spec = item.partition("=")
        region, dot, purpose = key.partition(".")
        if not sep or not dot or not purpose.strip():
            raise ValidationFailed(
                f"invalid region override {item!r}; expected 'REGION.purpose=6mo'",
                details={"value": item},
            )
        normalized = normalize_region(region)
        if normalized is None:
            raise ValidationFailed(f"region override {item!r} has no region", details={})
        result.setdefault(normalized, {})[purpose.strip()] = parse_ttl(spec)
    return result


def build_registry(
    overrides: Iterable[str] = (), purposes: Iterable[Purpose] = DEFAULT_PURPOSES
) -> PurposeRegistry:
    return PurposeRegistry(
        purposes={purpose.name: purpose for purpose in purposes},
        region_ttls=parse_region_overrides(overrides),
    )
