"""The AsyncAPI 3 document of ``/ws/support``, generated from the protocol's message tables.

Served at ``/asyncapi.json``. Message keys are ``client.<type>`` and ``server.<type>`` with
``:`` written as ``.`` (AsyncAPI component keys allow only ``[A-Za-z0-9._-]``).
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

from pydantic import BaseModel

from service.support.protocol import CLIENT_MESSAGES, SERVER_MESSAGES
from service.support.settings import SupportSettings
from service.version import VERSION

REF = "#/components/schemas/{model}"
DIRECTIONS = {"client": "client to server", "server": "server to client"}

DESCRIPTION = """\
Live support over one WebSocket: customers wait in a fair queue and chat with an admin; admins
see the desk. One JSON object per text frame, `{"type": ..., ...}`.

* The first client frame is `hello`; the server answers `welcome` (with a customer's resume
  token), then, for each room named in `hello.rooms`, a `resume` frame followed by exactly the
  messages missed since the given offset, in order, once (or `recovered: false`).
* Every `chat:send` is acknowledged with `chat:ack`; a resent `client_id` is stored once and
  acknowledged again with `duplicate: true`. The ack's `epoch` and `offset` are the message's
  place in the room: the connection that sent it does not get it back as `chat:message` (the
  person's other connections do). A client counts an acknowledged offset as received, and
  resumes after the last offset up to which it has every message (its own acks included); a
  message it has already, seen again after a resume, is known by its offset.
* The server sends `ping` every `welcome.heartbeat` seconds; a client silent for two periods is
  closed with 4000. Bad frames get an `error` frame and the connection stays open.
* When a process stops it drains: each client gets a `reconnect` frame, then a close with 1012
  (service restart), the clients spread over a few seconds; a connection opened meanwhile gets
  the same at once. Wait `retry_after_ms`, connect again (a load balancer routes elsewhere) and
  resume with `hello` (resume token, `rooms` offsets): nothing is lost.
* Close codes: 4000 heartbeat missed, 4001 no hello in time, 4003 admin login failed, 1013 the
  client read too slowly (resume from the last offset), 1012 the server restarts (reconnect
  after `retry_after_ms` of the `reconnect` frame and resume), 1001 server going away.
"""


def message_key(side: str, kind: str) -> str:
    return f"{side}.{kind.replace(':', '.')}"


def _schemas(models: list[type[BaseModel]]) -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for model in models:
        schema = model.model_json_schema(ref_template=REF)
        for name, sub in schema.pop("$defs", {}).items():
            schemas[name] = sub
        schemas[model.__name__] = schema
    return schemas


@cache
def _document() -> dict[str, Any]:
    client = {message_key("client", kind): model for kind, model in CLIENT_MESSAGES.items()}
    server = {message_key("server", kind): model for kind, model in SERVER_MESSAGES.items()}
    messages: dict[str, Any] = {}
    for key, model in {**client, **server}.items():
        kind = key.split(".", 1)[1].replace(".", ":")
        messages[key] = {
            "name": kind,
            "title": f"{kind} ({DIRECTIONS[key.split('.', 1)[0]]})",
            "summary": (model.__doc__ or kind).strip().splitlines()[0],
            "contentType": "application/json",
            "payload": {"$ref": REF.format(model=model.__name__)},
        }
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "kervan live support", "version": VERSION, "description": DESCRIPTION},
        "defaultContentType": "application/json",
        "servers": {
            "kervan": {
                "host": "{host}",
                "protocol": "wss",
                "pathname": "/ws/support",
                "description": "The kervan service itself (ws:// in development).",
                "variables": {"host": {"default": "localhost:8000"}},
            }
        },
        "channels": {
            "support": {
                "address": "/ws/support",
                "title": "Live support",
                "messages": {key: {"$ref": f"#/components/messages/{key}"} for key in messages},
            }
        },
        "operations": {
            "clientSends": {
                "action": "receive",
                "title": "Frames a client sends",
                "channel": {"$ref": "#/channels/support"},
                "messages": [{"$ref": f"#/channels/support/messages/{key}"} for key in client],
            },
            "serverSends": {
                "action": "send",
                "title": "Frames the server sends",
                "channel": {"$ref": "#/channels/support"},
                "messages": [{"$ref": f"#/channels/support/messages/{key}"} for key in server],
            },
        },
        "components": {
            "messages": messages,
            "schemas": _schemas([*client.values(), *server.values()]),
        },
    }


def asyncapi_document(settings: SupportSettings | None = None) -> dict[str, Any]:
    """The document; with ``settings``, the limits this deployment enforces (names, message
    texts, frame size) instead of the protocol's upper bounds."""
    doc = copy.deepcopy(_document())
    if settings is None:
        return doc
    schemas = doc["components"]["schemas"]
    schemas["Hello"]["properties"]["name"]["anyOf"][0]["maxLength"] = (
        settings.support_name_max_length
    )
    for model in ("ChatSend", "MessageLeave"):
        schemas[model]["properties"]["text"]["maxLength"] = settings.support_message_max_length
    doc["info"]["description"] += (
        f"\nA client frame may have at most {settings.support_max_frame_bytes} bytes "
        "(`error` code `frame_too_large`); the server pings every "
        f"{settings.support_heartbeat_seconds:g} s.\n"
    )
    return doc
