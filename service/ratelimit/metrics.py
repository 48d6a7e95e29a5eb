"""Prometheus metrics of rate limiting and lockouts."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from service.metrics import REGISTRY

CHECKS = Counter(
    "kervan_ratelimit_checks_total",
    "Rate-limit checks, by policy.",
    ["policy"],
    registry=REGISTRY,
)
REFUSALS = Counter(
    "kervan_ratelimit_refusals_total",
    "Checks the policy refused, by policy and mode (enforced, or shadow: counted only).",
    ["policy", "mode"],
    registry=REGISTRY,
)
BACKEND_FAILURES = Counter(
    "kervan_ratelimit_backend_errors_total",
    "Checks answered by the failure mode because the backend failed, by policy and mode.",
    ["policy", "failure_mode"],
    registry=REGISTRY,
)
LOCKS = Counter(
    "kervan_lockouts_total",
    "Keys locked after too many failures, by lockout rule.",
    ["rule"],
    registry=REGISTRY,
)
LOCKS_ACTIVE = Gauge(
    "kervan_lockouts_active",
    "Locks in force at the last refresh (all processes, read from the backend).",
    registry=REGISTRY,
)
