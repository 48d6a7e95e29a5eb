"""Live-support metrics: connections, the queue's outcomes, messages."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import Counter, Gauge

from service.metrics import REGISTRY


@dataclass(frozen=True)
class SupportMetrics:
    connections: Gauge = field(
        default_factory=lambda: Gauge(
            "kervan_support_connections",
            "Open /ws/support connections of this process, by role.",
            ["role"],
            registry=REGISTRY,
        )
    )
    joins: Counter = field(
        default_factory=lambda: Counter(
            "kervan_support_queue_joins_total",
            "Queue joins by outcome (assigned at once, waiting, served_from_queue).",
            ["outcome"],
            registry=REGISTRY,
        )
    )
    refused: Counter = field(
        default_factory=lambda: Counter(
            "kervan_support_queue_refused_total",
            "Joins refused, by reason (full, all_busy, unavailable).",
            ["reason"],
            registry=REGISTRY,
        )
    )
    abandoned: Counter = field(
        default_factory=lambda: Counter(
            "kervan_support_queue_abandoned_total",
            "Customers who left the queue without being served, by reason "
            "(grace_expired, max_wait).",
            ["reason"],
            registry=REGISTRY,
        )
    )
    waiting: Gauge = field(
        default_factory=lambda: Gauge(
            "kervan_support_queue_waiting",
            "Customers waiting, as the last sweep of this process saw it.",
            registry=REGISTRY,
        )
    )
    messages: Counter = field(
        default_factory=lambda: Counter(
            "kervan_support_messages_total",
            "Chat messages stored, by sender role.",
            ["role"],
            registry=REGISTRY,
        )
    )
    duplicates: Counter = field(
        default_factory=lambda: Counter(
            "kervan_support_message_duplicates_total",
            "Chat messages resent with a client id already stored (acknowledged, not stored).",
            registry=REGISTRY,
        )
    )
    chats_ended: Counter = field(
        default_factory=lambda: Counter(
            "kervan_support_chats_ended_total",
            "Chats ended, by reason.",
            ["reason"],
            registry=REGISTRY,
        )
    )
    left_messages: Counter = field(
        default_factory=lambda: Counter(
            "kervan_support_left_messages_total",
            "Messages left instead of waiting.",
            registry=REGISTRY,
        )
    )
    callbacks: Counter = field(
        default_factory=lambda: Counter(
            "kervan_support_callbacks_total",
            "WhatsApp call-back requests stored.",
            registry=REGISTRY,
        )
    )
    frames_refused: Counter = field(
        default_factory=lambda: Counter(
            "kervan_support_frames_refused_total",
            "Client frames answered with an error frame, by code.",
            ["code"],
            registry=REGISTRY,
        )
    )
    drained: Counter = field(
        default_factory=lambda: Counter(
            "kervan_support_drained_total",
            "Connections sent elsewhere while this process drains: told (open ones, reconnect "
            "frame then 1012) or refused (opened during the drain).",
            ["outcome"],
            registry=REGISTRY,
        )
    )


SUPPORT = SupportMetrics()
