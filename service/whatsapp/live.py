"""Live updates for the admin console: new messages and status changes on the pub/sub interface.

Publication happens after the transaction committed and is best effort: the console reloads
from the database when it reconnects, so a lost notification costs freshness, not data.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from service.backends import Backends
from service.backends.keys import WHATSAPP_LIVE_CHANNEL
from service.logging import get_logger
from service.whatsapp.crm import convo_lists_changed
from service.whatsapp.store import StatusChange, StoredInbound

log = get_logger("kervan.whatsapp.live")


def message_event(
    message_id: int, convo_id: int, direction: str, kind: str, status: str
) -> dict[str, Any]:
    return {
        "type": "message.new",
        "message_id": message_id,
        "convo_id": convo_id,
        "direction": direction,
        "kind": kind,
        "status": status,
    }


def inbound_events(stored: Iterable[StoredInbound]) -> list[dict[str, Any]]:
    return [message_event(s.message_id, s.convo_id, "in", s.event.kind, "received") for s in stored]


def status_events(changes: Iterable[StatusChange]) -> list[dict[str, Any]]:
    return [
        {
            "type": "message.status",
            "message_id": c.message_id,
            "convo_id": c.convo_id,
            "status": c.status,
            "previous": c.previous,
        }
        for c in changes
    ]


async def publish(backends: Backends, events: Iterable[dict[str, Any]]) -> None:
    events = list(events)
    if events:
        # Every committed change the console hears of changes what its lists show.
        await convo_lists_changed(backends)
    for event in events:
        try:
            await backends.pubsub.publish(WHATSAPP_LIVE_CHANNEL, orjson.dumps(event))
        except Exception as exc:  # best effort; see module docstring
            log.warning("live update not published: %s", type(exc).__name__)
            return
