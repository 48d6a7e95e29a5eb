"""Banner/policy versions and which purposes each version change re-asks.

Versions are ordered oldest to newest. A choice made under version ``v`` is stale for purpose
``p`` when a later version (up to the current one) declares that it touches ``p``. A choice with
no recorded version, or one the history no longer lists, counts as older than every version.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from core.errors import ValidationFailed

ALL_PURPOSES = "*"


@dataclass(frozen=True, slots=True)
class BannerRelease:
    version: str
    touches: frozenset[str]

    def touches_purpose(self, purpose: str) -> bool:
        return ALL_PURPOSES in self.touches or purpose in self.touches


@dataclass(frozen=True)
class BannerPolicy:
    releases: tuple[BannerRelease, ...]

    def __post_init__(self) -> None:
        if not self.releases:
            raise ValueError("a banner policy needs at least the current version")
        versions = [release.version for release in self.releases]
        if len(set(versions)) != len(versions):
            raise ValidationFailed("banner versions must be unique", details={"versions": versions})

    @property
    def current(self) -> str:
        return self.releases[-1].version

    @property
    def versions(self) -> tuple[str, ...]:
        return tuple(release.version for release in self.releases)

    def require_known(self, version: str) -> None:
        if version not in self.versions:
            raise ValidationFailed(
                "unknown banner version",
                details={"banner_version": version, "known": list(self.versions)},
            )

    def is_stale(self, purpose: str, version: str | None) -> bool:
        position = self._position(version)
        return any(release.touches_purpose(purpose) for release in self.releases[position + 1 :])

    def _position(self, version: str | None) -> int:
        if version is None:
            return -1
        for index, release in enumerate(self.releases):
            if release.version == version:
                return index
        return -1


def build_banner_policy(current: str, history: Sequence[str] = ()) -> BannerPolicy:
    """Build from settings: ``history`` items ``"2=ads|analytics"`` or ``"3=*"``, oldest first.

    ``current`` is appended (touching nothing) when the history does not already end with it.
    """
    releases = [_parse_release(item) for item in history if item.strip()]
    if not releases or releases[-1].version != current:
        if current in {release.version for release in releases}:
            raise ValidationFailed(
                "the current banner version must be the newest entry of the history",
                details={"current": current},
            )
        releases.append(BannerRelease(current, frozenset()))
    return BannerPolicy(tuple(releases))


def _parse_release(item: str) -> BannerRelease:
    version, _, purposes = item.strip().partition("=")
    version = version.strip()
    if not version:
        raise ValidationFailed(f"invalid banner release {item!r}", details={"value": item})
    return BannerRelease(version, frozenset(_split(purposes)))


def _split(purposes: str) -> Iterable[str]:
    return (part.strip() for part in purposes.split("|") if part.strip())
