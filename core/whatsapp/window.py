"""The 24-hour customer-service window: free-form messages are allowed only within 24 hours of
the customer's last inbound message; outside it the business must send an approved template."""

from __future__ import annotations

SERVICE_WINDOW_SECONDS = 24 * 60 * 60


def window_open(last_inbound_at: float | None, now: float) -> bool:
    if last_inbound_at is None:
        return False
    return now - last_inbound_at < SERVICE_WINDOW_SECONDS


def window_closes_at(last_inbound_at: float | None) -> float | None:
    return None if last_inbound_at is None else last_inbound_at + SERVICE_WINDOW_SECONDS
