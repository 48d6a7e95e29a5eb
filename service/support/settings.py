"""Live support's part of the settings (``KERVAN_SUPPORT_*``), composed into
``service.settings.Settings``.

A leaf module (pydantic and the standard library only), so it never causes an import cycle;
read the values through the one ``Settings`` object.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class SupportSettings(BaseModel):
    support_queue_enabled: bool = Field(
        default=True,
        description="Let customers wait for a free admin; false: when every admin is busy, "
        "a new customer is refused at once.",
    )
    support_queue_capacity: int = Field(
        default=200,
        ge=1,
        le=100_000,
        description="Customers that may wait at once; beyond it a join is refused (localized, "
        "with the current ETA).",
    )
    support_grace_seconds: float = Field(
        default=120.0,
        ge=1,
        le=3600,
        description="How long a disconnected waiting customer keeps the place in the queue "
        "(resumed with the resume token).",
    )
    support_max_wait_seconds: float = Field(
        default=900.0,
        ge=10,
        le=86_400,
        description="Longest wait: then the customer is offered to leave a message or a "
        "WhatsApp call back, and leaves the queue.",
    )
    support_default_handle_seconds: float = Field(
        default=300.0,
        gt=0,
        le=86_400,
        description="Handle time assumed for the ETA until real handle times are known.",
    )
    support_heartbeat_seconds: float = Field(
        default=30.0,
        ge=0.05,
        le=600,
        description="Server ping period on /ws/support; a connection silent for two periods "
        "is closed.",
    )
    support_hello_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=120,
        description="A new WebSocket must send its `hello` within this time.",
    )
    support_sweep_seconds: float = Field(
        default=1.0,
        ge=0.01,
        le=60,
        description="Period of each process's queue sweep (grace ends, maximum waits, "
        "position updates missed on pub/sub).",
    )
    support_resume_ttl_seconds: float = Field(
        default=86_400.0,
        ge=60,
        le=30 * 86_400,
        description="How long a customer's resume token stays valid after its last use.",
    )
    support_name_max_length: int = Field(
        default=64, ge=1, le=200, description="Longest customer display name."
    )
    support_message_max_length: int = Field(
        default=4000, ge=1, le=65_536, description="Longest chat message, in characters."
    )
    support_max_frame_bytes: int = Field(
        default=16_384,
        ge=512,
        le=1 << 20,
        description="Largest WebSocket frame a client may send; larger ones get an error frame.",
    )
    support_drain_seconds: float = Field(
        default=5.0,
        ge=0,
        le=120,
        description="On SIGTERM, /ws/support clients are told to reconnect elsewhere (a "
        "`reconnect` frame, then close 1012) spread over this many seconds, before the process "
        "stops; /ready fails and new connections are refused meanwhile.",
    )
    support_send_queue: int = Field(
        default=256,
        ge=8,
        le=65_536,
        description="Frames waiting for one slow connection; past it the connection is closed "
        "(code 1013) and the client resumes from its last offset.",
    )
