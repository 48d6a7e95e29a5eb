"""The AsyncAPI document of /ws/support names every frame either side uses, and each sample of
each frame validates against the document's own schema for it."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson
import pytest

from service.support.asyncapi import asyncapi_document, message_key
from service.support.protocol import CLIENT_MESSAGES, SERVER_MESSAGES, frame, parse_client_frame

ROOT = Path(__file__).resolve().parents[2]

CLIENT_SAMPLES: dict[str, dict[str, Any]] = {
    "hello": {
        "type": "hello",
        "role": "customer",
        "name": "Ayşe",
        "language": "tr",
        "resume": "r" * 43,
        "rooms": {"cu_1": {"epoch": "e1", "offset": 3}},
        "calls": {"call-0001": {"room": "cu_1", "delivered": 4}},
    },
    "ping": {"type": "ping"},
    "pong": {"type": "pong"},
    "queue:join": {"type": "queue:join"},
    "queue:leave": {"type": "queue:leave"},
    "chat:send": {"type": "chat:send", "room": "cu_1", "client_id": "m-1", "text": "Merhaba"},
    "typing": {"type": "typing", "room": "cu_1", "active": True},
    "presence:set": {"type": "presence:set", "status": "away"},
    "chat:end": {"type": "chat:end", "room": "cu_1", "reason": "resolved"},
    "history:fetch": {
        "type": "history:fetch",
        "room": "cu_1",
        "before": "1796468791211880.12",
        "limit": 20,
    },
    "message:leave": {"type": "message:leave", "text": "Call me", "email": "a@b.co"},
    "callback:request": {
        "type": "callback:request",
        "phone": "+905551112233",
        "consent_subject": "anon_x",
    },
}

CALL = {"call": "call-0001", "seq": 3}
SDP = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
CANDIDATE = {
    "candidate": "candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host",
    "sdpMid": "0",
    "sdpMLineIndex": 0,
}
RTC_SAMPLES: dict[str, dict[str, Any]] = {
    "call:start": {**CALL, "seq": 1, "room": "cu_1", "media": "video"},
    "call:accept": CALL,
    "call:reject": {**CALL, "reason": "busy"},
    "call:end": {**CALL, "reason": "hangup"},
    "rtc:description": {**CALL, "description": {"type": "offer", "sdp": SDP}, "ice_restart": True},
    "rtc:ice:candidate": {**CALL, "candidate": CANDIDATE},
    "call:stats": {
        **CALL,
        "rtt_ms": 42.5,
        "jitter_ms": 3.1,
        "packet_loss": 0.01,
        "codec": "audio/opus",
        "candidate_pair": "relay",
        "region": "eu-1",
        "setup_ms": 1800,
    },
    "device:audio-output": {**CALL, "device_type": "bluetooth"},
    "call:control": {**CALL, "action": "audio_only"},
    "call:quality": {**CALL, "mode": "audio_only", "reason": "high_loss"},
}
CLIENT_SAMPLES.update({kind: {"type": kind, **body} for kind, body in RTC_SAMPLES.items()})
CLIENT_SAMPLES["rtc:ack"] = {"type": "rtc:ack", "call": "call-0001", "ack": 4, "sack": [6, 7]}

ETA = {"position": 2, "eta_seconds": 600.0, "eta_low": 420.0, "eta_high": 780.0}
SERVER_SAMPLES: dict[str, dict[str, Any]] = {
    "welcome": {
        "person": "cu_1",
        "role": "customer",
        "name": "Ayşe",
        "language": "tr",
        "resume": "r" * 43,
        "heartbeat": 30.0,
        "queue_enabled": True,
    },
    "ping": {},
    "pong": {},
    "reconnect": {"reason": "shutdown", "retry_after_ms": 640},
    "error": {"code": "not_in_room", "message": "you are not in room 'x'", "details": None},
    "queue:joined": ETA,
    "queue:position": ETA,
    "queue:ready": {"room": "cu_1", "admin": "ad_1", "admin_name": "mert"},
    "queue:refused": {"reason": "full", "message": "...", "eta_seconds": 600.0},
    "queue:timeout": {"message": "...", "options": ["message:leave", "callback:request"]},
    "queue:left": {"reason": "grace_expired"},
    "room:joined": {
        "room": "cu_1",
        "epoch": "e1",
        "offset": 0,
        "peer": {"id": "ad_1", "name": "mert", "role": "admin"},
    },
    "room:closed": {"room": "cu_1", "reason": "resolved"},
    "resume": {
        "room": "cu_1",
        "recovered": True,
        "epoch": "e1",
        "last_offset": 4,
        "history_before": None,
    },
    "chat:ack": {
        "client_id": "m-1",
        "room": "cu_1",
        "epoch": "e1",
        "offset": 1,
        "duplicate": False,
    },
    "chat:message": {
        "room": "cu_1",
        "epoch": "e1",
        "offset": 1,
        "sender": "cu_1",
        "role": "customer",
        "name": "Ayşe",
        "text": "Merhaba",
        "client_id": "m-1",
        "at": 1.5,
    },
    "typing": {"room": "cu_1", "sender": "ad_1", "active": True},
    "presence": {"admins": {"ad_1": "busy"}, "available": 0, "online": 1},
    "desk:state": {
        "serving": {"customer": "cu_1", "name": "Ayşe", "room": "cu_1", "talk_seconds": 12.0},
        "waiting": [{"customer": "cu_2", "name": "Hans", "waited_seconds": 3.0}],
    },
    "history:page": {
        "room": "cu_1",
        "messages": [
            {
                "id": 1,
                "direction": "in",
                "text": "x",
                "at": "2026-12-05T10:00:00+00:00",
                "sender": None,
            }
        ],
        "next_before": None,
    },
    "message:stored": {"conversation": 3, "message": "..."},
    "callback:stored": {"conversation": 3, "message": "..."},
    "rtc:ack": {"call": "call-0001", "ack": 3, "sack": [5]},
    "rtc:resumed": {"call": "call-0001", "delivered": 4, "received": 2, "state": "active"},
    "call:end": {"call": "call-0001", "seq": 9, "from": "kervan", "reason": "room_closed"},
}
SERVER_SAMPLES.update(
    {
        kind: {**body, "seq": 7, "from": "cu_1"}
        for kind, body in RTC_SAMPLES.items()
        if kind not in ("call:end", "device:audio-output")
    }
)


def _validator(doc: dict[str, Any], key: str) -> Any:
    """The message's payload schema, its references resolved inside the document itself."""
    payload = doc["components"]["messages"][key]["payload"]
    schema = {"$ref": payload["$ref"], "components": doc["components"]}
    return jsonschema_rs.Draft202012Validator(schema)


def test_the_document_is_asyncapi_3_with_both_directions() -> None:
    doc = asyncapi_document()
    assert doc["asyncapi"] == "3.0.0"
    assert doc["channels"]["support"]["address"] == "/ws/support"
    actions = {op["action"] for op in doc["operations"].values()}
    assert actions == {"send", "receive"}
    channel_messages = doc["channels"]["support"]["messages"]
    for operation in doc["operations"].values():
        for ref in operation["messages"]:
            assert ref["$ref"].removeprefix("#/channels/support/messages/") in channel_messages
    for key in channel_messages:
        assert key.replace(".", "").replace("_", "").replace("-", "").isalnum()


def test_every_message_type_has_a_sample_and_a_message() -> None:
    doc = asyncapi_document()
    messages = doc["components"]["messages"]
    assert set(CLIENT_SAMPLES) == set(CLIENT_MESSAGES)
    assert set(SERVER_SAMPLES) == set(SERVER_MESSAGES)
    for kind in CLIENT_MESSAGES:
        assert messages[message_key("client", kind)]["name"] == kind
    for kind in SERVER_MESSAGES:
        assert messages[message_key("server", kind)]["name"] == kind


@pytest.mark.parametrize("kind", sorted(CLIENT_SAMPLES))
def test_client_samples_validate_and_parse(kind: str) -> None:
    sample = CLIENT_SAMPLES[kind]
    _validator(asyncapi_document(), message_key("client", kind)).validate(sample)
    assert parse_client_frame(orjson.dumps(sample)).type == kind


@pytest.mark.parametrize("kind", sorted(SERVER_SAMPLES))
def test_server_samples_validate(kind: str) -> None:
    sample = orjson.loads(frame(kind, **SERVER_SAMPLES[kind]))
    _validator(asyncapi_document(), message_key("server", kind)).validate(sample)


def test_end_of_candidates_is_a_null_candidate() -> None:
    sample = {"type": "rtc:ice:candidate", "call": "call-0001", "seq": 2, "candidate": None}
    _validator(asyncapi_document(), message_key("client", "rtc:ice:candidate")).validate(sample)
    assert parse_client_frame(orjson.dumps(sample)).candidate is None  # type: ignore[union-attr]


def test_a_wrong_frame_does_not_validate() -> None:
    validator = _validator(asyncapi_document(), message_key("server", "chat:ack"))
    with pytest.raises(jsonschema_rs.ValidationError):
        validator.validate({"type": "chat:ack", "client_id": "m", "room": "r"})


def test_every_frame_the_server_code_sends_is_in_the_document() -> None:
    """Scans the support package for ``frame("<type>", ...)`` calls."""
    sent: set[str] = set()
    paths = [*(ROOT / "service" / "support").glob("*.py"), *(ROOT / "service" / "rtc").glob("*.py")]
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "frame"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                sent.add(node.args[0].value)
    assert sent, "no frame() call found"
    assert sent <= set(SERVER_MESSAGES), sent - set(SERVER_MESSAGES)
    with pytest.raises(KeyError):
        frame("made:up")


async def test_the_document_is_served_with_this_deployments_limits_and_linked_from_the_docs(
    make_client: Any, make_settings: Any
) -> None:
    settings = make_settings(support_message_max_length=500, support_name_max_length=20)
    async with make_client(settings) as client:
        response = await client.get("/asyncapi.json")
        assert response.status_code == 200
        doc = response.json()
        assert doc["asyncapi"] == "3.0.0"
        assert 'href="/asyncapi.json"' in (await client.get("/docs")).text
    chat = _validator(doc, message_key("client", "chat:send"))
    chat.validate({"type": "chat:send", "room": "r", "client_id": "c", "text": "x" * 500})
    with pytest.raises(jsonschema_rs.ValidationError):
        chat.validate({"type": "chat:send", "room": "r", "client_id": "c", "text": "x" * 501})
    hello = _validator(doc, message_key("client", "hello"))
    with pytest.raises(jsonschema_rs.ValidationError):
        hello.validate({"type": "hello", "role": "customer", "name": "x" * 21})
    assert str(settings.support_max_frame_bytes) in doc["info"]["description"]
