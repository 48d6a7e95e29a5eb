"""Tracking ingest metrics: events by outcome, batches by result, the write path taken."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from service.metrics import REGISTRY

EVENTS = Counter(
    "kervan_tracking_events_total",
    "Events received on POST /t/sync per outcome (accepted, duplicate, rejected) and reason.",
    ["outcome", "reason"],
    registry=REGISTRY,
)
BATCHES = Counter(
    "kervan_tracking_batches_total",
    "POST /t/sync batches per result: stored, replayed (Idempotency-Key), over_quota.",
    ["result"],
    registry=REGISTRY,
)
WRITE_PATHS = Counter(
    "kervan_tracking_write_paths_total",
    "Batch transactions per path: group (several batches), fast (one batch), exact (the "
    "quota's first batch of a month or its last room), one_by_one (an event failed its own "
    "insert), retry (deadlock).",
    ["path"],
    registry=REGISTRY,
)
GROUP_SIZE = Histogram(
    "kervan_tracking_write_group_batches",
    "Batches written together in one transaction (group commit).",
    buckets=(1, 2, 4, 8, 16, 32, 64),
    registry=REGISTRY,
)
FLOW_TRANSITIONS = Counter(
    "kervan_tracking_flow_transitions_total",
    "Page transitions fed from tracked page views to the speculation flows, per outcome "
    "(counted, dropped: the flush failed, skipped: the site's segment cannot be stored).",
    ["outcome"],
    registry=REGISTRY,
)

ACCEPTED = EVENTS.labels("accepted", "")
DUPLICATE = EVENTS.labels("duplicate", "")

QUOTA_REFUSALS = Counter(
    "kervan_tracking_quota_refusals_total",
    "Refused for a site's monthly quota, per kind: events (refused in a batch, or in a batch "
    "answered 429) and intents (clicks stored as events without an intent).",
    ["kind"],
    registry=REGISTRY,
)
QUOTA_WARNINGS = Counter(
    "kervan_tracking_quota_warnings_total",
    "Quota warnings raised (one per site, month, kind and level), per kind (events, intents) "
    "and level (early: the configured share of the limit; used_up).",
    ["kind", "level"],
    registry=REGISTRY,
)
QUOTA_NOTICES = Counter(
    "kervan_tracking_quota_notices_total",
    "Quota warning messages queued to site owners, per channel (email, telegram).",
    ["channel"],
    registry=REGISTRY,
)
