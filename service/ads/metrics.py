"""Prometheus metrics of the Google Ads uploads."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from service.metrics import REGISTRY

CONVERSIONS = Counter(
    "kervan_ads_conversions_total",
    "Conversion outcomes: uploaded, duplicate (already recorded), retry, failed, not_eligible, "
    "released (no request made: the connection is paused).",
    ["outcome"],
    registry=REGISTRY,
)
REQUESTS = Counter(
    "kervan_ads_requests_total",
    "Requests to Google by kind (token, request) and outcome.",
    ["kind", "outcome"],
    registry=REGISTRY,
)
REQUEST_SECONDS = Histogram(
    "kervan_ads_request_seconds",
    "Latency of uploadClickConversions requests.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)
PAUSES = Counter(
    "kervan_ads_connection_pauses_total",
    "Sites' uploads paused until the owner connects again, by reason.",
    ["reason"],
    registry=REGISTRY,
)
