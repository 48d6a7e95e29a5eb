"""The WhatsApp feature's part of the settings (``KERVAN_WHATSAPP_*``), composed into
``service.settings.Settings``. Its send pacing is the queue's (``KERVAN_QUEUE_WHATSAPP_PACING``).

A leaf module (pydantic and the standard library only), so it never causes an import cycle;
read the values through the one ``Settings`` object.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field


class WhatsAppSettings(BaseModel):
    whatsapp_app_secret: str = ""  # Meta app secret: X-Hub-Signature-256 key; empty = refuse all
    whatsapp_verify_token: str = ""  # hub.verify_token of the GET handshake; empty = refuse
    whatsapp_access_token: str = ""  # Graph API bearer token
    whatsapp_phone_number_id: str = ""
    whatsapp_graph_base_url: str = "https://graph.facebook.com"
    whatsapp_api_version: str = Field(default="v21.0", pattern=r"^v[0-9]{1,3}\.[0-9]{1,3}$")
    whatsapp_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    whatsapp_send_max_attempts: int = Field(default=8, ge=1, le=50)
    # Signs the /u/{token} unsubscribe links; empty = derived from cookie_secret.
    whatsapp_unsubscribe_secret: str = ""
    whatsapp_auto_reply: bool = False  # keyword/FAQ responder on inbound messages
    whatsapp_faq: dict[str, str] = {}  # JSON object: keyword -> answer
    # Meta batches notifications into payloads of up to 3 MB.
    whatsapp_max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    # Processed/rejected raw webhook events and parked statuses are purged after this; 0 = keep.
    whatsapp_event_retention_days: int = Field(default=30, ge=0, le=3650)
    whatsapp_pending_status_retention_days: int = Field(default=7, ge=0, le=3650)
    # Group commit: most webhook deliveries stored, and processed, per transaction.
    whatsapp_webhook_max_group: int = Field(default=64, ge=1, le=1000)
    # How long a group-commit stage waits for more deliveries while a burst is on; a lone
    # delivery never waits.
    whatsapp_webhook_group_wait_ms: float = Field(default=4.0, ge=0, le=100)
    # Most signed deliveries accepted and not answered yet (each holds its body in memory); one
    # more is refused with 503 and Retry-After before it is stored, and Meta delivers it again.
    whatsapp_webhook_max_pending: int = Field(default=2048, ge=1, le=1_000_000)
    # Test seam for crash tests: while this file exists, webhook processing waits (storing goes
    # on). Unset (the default) = no seam; ignored with KERVAN_ENV=production.
    whatsapp_test_hold_file: Path | None = None
