"""WhatsApp metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from service.metrics import REGISTRY

WEBHOOK_DELIVERIES = Counter(
    "kervan_whatsapp_webhooks_total",
    "Webhook deliveries by outcome (processed, rejected, bad_signature, failed, overloaded: "
    "refused with 503 before storing, because too many deliveries were pending).",
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
WEBHOOK_GROUP_SIZE = Histogram(
    "kervan_whatsapp_webhook_group_size",
    "Deliveries per group-committed transaction, by stage (store: raw events, process: CRM).",
    ["stage"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
    registry=REGISTRY,
)
WEBHOOK_RECOVERED = Counter(
    "kervan_whatsapp_webhooks_recovered_total",
    "Stored deliveries found unprocessed (after a crash) and processed by the recovery sweep.",
    registry=REGISTRY,
)
WEBHOOK_PENDING = Gauge(
    "kervan_whatsapp_webhooks_pending",
    "Signed webhook deliveries accepted and not answered yet (stored or waiting to be), "
    "against KERVAN_WHATSAPP_WEBHOOK_MAX_PENDING.",
    registry=REGISTRY,
)
WEBHOOK_RETRIES = Counter(
    "kervan_whatsapp_webhook_retries_total",
    "Group-committed webhook transactions run again after a transient database error (lock "
    "wait timeout, deadlock, lost connection), by stage (store, process).",
    ["stage"],
    registry=REGISTRY,
)
SENDS = Counter(
    "kervan_whatsapp_sends_total",
    "Graph API send attempts by result (sent, retry, no_retry, needs_template).",
    ["result"],
    registry=REGISTRY,
)
