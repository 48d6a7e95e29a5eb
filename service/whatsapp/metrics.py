"""WhatsApp metrics."""

from __future__ import annotations

from prometheus_client import Counter

from service.metrics import REGISTRY

WEBHOOK_DELIVERIES = Counter(
    "kervan_whatsapp_webhooks_total",
    "Webhook deliveries by outcome (processed, rejected, bad_signature, failed).",
    ["outcome"],
    registry=REGISTRY,
)
INBOUND_MESSAGES = Counter(
    "kervan_whatsapp_inbound_messages_total",
    "Inbound messages by result (stored, duplicate).",
    ["result"],
    registry=REGISTRY,
)
STATUS_UPDATES = Counter(
    "kervan_whatsapp_status_updates_total",
    "Status webhooks by result (applied: the status moved, kept: it did not, parked: unknown id).",
    ["result"],
    registry=REGISTRY,
)
SENDS = Counter(
    "kervan_whatsapp_sends_total",
    "Graph API send attempts by result (sent, retry, no_retry, needs_template).",
    ["result"],
    registry=REGISTRY,
)
