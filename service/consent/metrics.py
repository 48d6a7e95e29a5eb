"""Consent metrics."""

from __future__ import annotations

from prometheus_client import Counter

from service.metrics import REGISTRY

CONSENT_EVENTS = Counter(
    "kervan_consent_events_total",
    "Consent events appended to the log, by action (grant, refuse, withdraw) and source.",
    ["action", "source"],
    registry=REGISTRY,
)
CONSENT_CHAIN_BREAKS = Counter(
    "kervan_consent_chain_breaks_total",
    "Hash-chain breaks found by consent event verification (exports, event listings).",
    registry=REGISTRY,
)
