"""Rate limiting and lockouts: policy syntax, GCRA decisions, lockout escalation (pure logic)."""

from core.ratelimit.catalog import Catalog, build_catalog, parse_assignments
from core.ratelimit.decision import Decision, decision_from_tat, degraded_decision
from core.ratelimit.lockout import (
    LockEvent,
    LockoutRule,
    LockoutState,
    parse_lockout_rule,
    record_failure,
    record_success,
)
from core.ratelimit.policy import FailureMode, Policy, parse_policy

__all__ = [
    "Catalog",
    "Decision",
    "FailureMode",
    "LockEvent",
    "LockoutRule",
    "LockoutState",
    "Policy",
    "build_catalog",
    "decision_from_tat",
    "degraded_decision",
    "parse_assignments",
    "parse_lockout_rule",
    "parse_policy",
    "record_failure",
    "record_success",
]
