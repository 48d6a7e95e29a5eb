"""WhatsApp sends and read receipts are paced per sender phone-number id (issue 6)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from core.jobs import Job
from service.queue.handlers import HandlerRegistry
from service.settings import Settings
from service.whatsapp.jobs import PHONE_PACING, register_whatsapp_handlers
from service.whatsapp.outbound import READ_QUEUE, SEND_QUEUE


def test_whatsapp_queues_are_paced_per_phone_number_id() -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, whatsapp_phone_number_id="1234567890", queue_whatsapp_pacing="7/second"
    )
    handlers = HandlerRegistry()
    register_whatsapp_handlers(SimpleNamespace(settings=settings), handlers)  # type: ignore[arg-type]
    assert handlers.pacing_policies()[PHONE_PACING] == "7/second"
    job = Job(
        key="k",
        queue=SEND_QUEUE,
        payload={"message_id": 1},
        attempt=1,
        max_attempts=3,
        enqueued_at=0.0,
    )
    for queue in (SEND_QUEUE, READ_QUEUE):
        registration = handlers.get(queue)
        assert registration is not None and registration.pacing is not None
        assert registration.pacing(job) == [(PHONE_PACING, "1234567890")]


def test_bad_whatsapp_pacing_stops_the_start() -> None:
    with pytest.raises(ValidationError, match="queue_whatsapp_pacing"):
        Settings(_env_file=None, queue_whatsapp_pacing="lots per second")  # type: ignore[call-arg]
