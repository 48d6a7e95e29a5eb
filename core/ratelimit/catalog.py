"""The one place where rate-limit policies and lockout rules are declared.

Defaults live here; deployments override or add entries through settings with the same syntax
(``name=spec; name=spec``). Everything is parsed and validated when the service starts, so a typo
stops the start-up with a message naming the entry instead of surfacing on the first request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from core.errors import ValidationFailed
from core.ratelimit.lockout import LockoutRule, parse_lockout_rule
from core.ratelimit.policy import Policy, parse_policy

DEFAULT_POLICIES: dict[str, str] = {
    # Every request, keyed by client IP (the ASGI middleware).
    "public.ip": "600/minute burst 100",
    # Tracking beacons are small and bursty (a page view sends several at once).
    "ingest.ip": "1200/minute burst 300",
    # POST /t/sync: a visitor's page sends a batch every few seconds at most (many visitors may
    # share an address); a site's own script across all its visitors.
    "tracking.ip": "600/minute burst 120",
    "tracking.site": "3000/second burst 6000",
    "admin": "1200/minute burst 200",
    # CSV exports of a site's data (bulk personal data, each a long database read), per
    # signed-in person or admin.
    "export": "30/hour burst 10",
    "api_key": "6000/minute burst 1000",
    # Authentication refuses rather than admits when the limiter cannot be consulted.
    "login": "10/minute burst 5 fail closed",
    "otp.send": "5/hour burst 3 fail closed",
    "otp.verify": "10/minute burst 5 fail closed",
    # Provider throughput: WhatsApp Cloud API 80 messages/s per number, Telegram 30/s per bot.
    "outbound.whatsapp": "80/second burst 80",
    "outbound.telegram": "30/second burst 30",
}

DEFAULT_LOCKOUTS: dict[str, str] = {
    "otp": "5 failures in 15 minutes lock 15 minutes, 1 hour, 1 day forget after 1 day",
    "login": "10 failures in 15 minutes lock 15 minutes, 1 hour, 1 day forget after 1 day",
}


@dataclass(frozen=True)
class Catalog:
    policies: Mapping[str, Policy]
    lockouts: Mapping[str, LockoutRule]

    def policy(self, name: str) -> Policy:
        try:
            return self.policies[name]
        except KeyError:
            raise KeyError(f"unknown rate-limit policy {name!r}") from None

    def lockout(self, name: str) -> LockoutRule:
        try:
            return self.lockouts[name]
        except KeyError:
            raise KeyError(f"unknown lockout rule {name!r}") from None


def parse_assignments(text: str, what: str) -> dict[str, str]:
    """``"a=spec; b=spec"`` -> ``{"a": "spec", "b": "spec"}``."""
    entries: dict[str, str] = {}
    for chunk in text.split(";"):
        if not chunk.strip():
            continue
        name, sep, spec = chunk.partition("=")
        if not sep or not name.strip() or not spec.strip():
            raise ValidationFailed(
                f"invalid {what} entry {chunk.strip()!r}: expected 'name=spec'",
                details={"entry": chunk.strip()},
            )
        entries[name.strip()] = spec.strip()
    return entries


def build_catalog(
    policy_overrides: Mapping[str, str] | None = None,
    lockout_overrides: Mapping[str, str] | None = None,
) -> Catalog:
    """Defaults merged with overrides, every entry parsed; all errors reported together."""
    errors: list[str] = []
    policies: dict[str, Policy] = {}
    lockouts: dict[str, LockoutRule] = {}
    for name, spec in {**DEFAULT_POLICIES, **(policy_overrides or {})}.items():
        try:
            policies[name] = parse_policy(name, spec)
        except ValidationFailed as error:
            errors.append(error.message)
    for name, spec in {**DEFAULT_LOCKOUTS, **(lockout_overrides or {})}.items():
        try:
            lockouts[name] = parse_lockout_rule(name, spec)
        except ValidationFailed as error:
            errors.append(error.message)
    if errors:
        raise ValidationFailed("; ".join(errors), details={"errors": errors})
    return Catalog(policies, lockouts)
