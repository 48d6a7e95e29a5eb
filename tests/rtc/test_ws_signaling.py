"""Call signaling over /ws/support, with the embedded backends and with the real Redis: relayed
between the two members only, acknowledged, in order and once, resent until acknowledged, and
resumed after a reconnect with exactly what was missed."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from service.rtc.relay import SignalRelay
from tests.support.wsclient import Client, Desk, admin_token

Serve = Callable[..., AbstractAsyncContextManager[Desk]]
CALL = "call-0001"
SDP = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"


def offer(seq: int, *, call: str = CALL, kind: str = "offer", **extra: Any) -> dict[str, Any]:
    return {
        "type": "rtc:description",
        "call": call,
        "seq": seq,
        "description": {"type": kind, "sdp": SDP},
        **extra,
    }


def candidate(seq: int, n: int, *, call: str = CALL) -> dict[str, Any]:
    line = f"candidate:{n} 1 udp 2130706431 127.0.0.1 {50000 + n} typ host"
    return {
        "type": "rtc:ice:candidate",
        "call": call,
        "seq": seq,
        "candidate": {"candidate": line, "sdpMid": "0", "sdpMLineIndex": 0},
    }


@asynccontextmanager
async def in_room(
    desk: Desk, admin_name: str = "mert"
) -> AsyncIterator[tuple[Client, Client, str]]:
    """A customer and an admin in one support room: ``(customer, admin, room)``."""
    token = await admin_token(desk.runtime, admin_name)
    async with desk.admin(token) as admin, desk.customer() as customer:
        room = customer.welcome["person"]
        await customer.send({"type": "queue:join"})
        await customer.expect("room:joined", room=room)
        await admin.expect("room:joined", room=room)
        yield customer, admin, room


async def start_call(customer: Client, room: str, *, call: str = CALL) -> None:
    await customer.send({"type": "call:start", "call": call, "seq": 1, "room": room})
    await customer.expect("rtc:ack", call=call, ack=1)


async def test_signaling_is_relayed_in_order_and_acknowledged(serve_desk: Serve) -> None:
    async with serve_desk() as desk, in_room(desk) as (customer, admin, room):
        await start_call(customer, room)
        await customer.send(offer(2))
        await customer.send(candidate(3, 1))
        await customer.send({**candidate(4, 0), "candidate": None})
        assert (await customer.expect("rtc:ack", call=CALL, ack=4))["sack"] == []
        ring = await admin.expect("call:start", call=CALL)
        assert (ring["seq"], ring["from"], ring["room"], ring["media"]) == (1, room, room, "audio")
        described = await admin.expect("rtc:description", call=CALL)
        assert (described["seq"], described["description"]["sdp"]) == (2, SDP)
        first = await admin.expect("rtc:ice:candidate", call=CALL, seq=3)
        assert first["candidate"]["candidate"].startswith("candidate:1 ")
        last = await admin.expect("rtc:ice:candidate", call=CALL, seq=4)
        assert last["candidate"] is None
        await admin.send({"type": "rtc:ack", "call": CALL, "ack": 4})
        # The admin's own numbering: accept, then the answer.
        await admin.send({"type": "call:accept", "call": CALL, "seq": 1})
        await admin.send(offer(2, kind="answer"))
        await admin.expect("rtc:ack", call=CALL, ack=2)
        accepted = await customer.expect("call:accept", call=CALL)
        assert (accepted["seq"], accepted["from"]) == (1, admin.welcome["person"])
        answer = await customer.expect("rtc:description", call=CALL, seq=2)
        assert answer["description"]["type"] == "answer"


async def test_duplicates_are_dropped_and_gaps_held_until_filled(serve_desk: Serve) -> None:
    async with serve_desk() as desk, in_room(desk) as (customer, admin, room):
        await start_call(customer, room)
        await customer.send(candidate(3, 3))
        held = await customer.expect("rtc:ack", call=CALL, ack=1)
        assert held["sack"] == [3]
        await admin.expect("call:start", call=CALL)
        await admin.absent("rtc:ice:candidate", within=0.3)
        await customer.send(offer(2))
        assert (await customer.expect("rtc:ack", call=CALL, ack=3))["sack"] == []
        assert (await admin.expect("rtc:description", call=CALL))["seq"] == 2
        assert (await admin.expect("rtc:ice:candidate", call=CALL))["seq"] == 3
        await admin.send({"type": "rtc:ack", "call": CALL, "ack": 3})
        await customer.send(offer(2))  # resent: taken once
        await customer.expect("rtc:ack", call=CALL, ack=3)
        await admin.absent("rtc:description", within=0.4)


async def test_unacknowledged_frames_are_resent_until_acknowledged(serve_desk: Serve) -> None:
    fast = {"rtc_retransmit_ms": 50, "rtc_retransmit_max_ms": 200}
    async with serve_desk(**fast) as desk, in_room(desk) as (customer, admin, room):
        await start_call(customer, room)
        first = await admin.expect("call:start", call=CALL)
        again = await admin.expect("call:start", call=CALL)
        assert first == again
        await admin.send({"type": "rtc:ack", "call": CALL, "ack": 1})
        # One resend may have been under way with the ack; then nothing more comes.
        await asyncio.sleep(0.3)
        admin.frames.clear()
        await _drain(admin)
        await admin.absent("call:start", within=0.6)


async def test_a_reconnecting_member_gets_exactly_what_it_missed_after_rtc_resumed(
    serve_desk: Serve,
) -> None:
    async with serve_desk() as desk:
        token = await admin_token(desk.runtime, "mert")
        async with desk.customer() as customer:
            room = customer.welcome["person"]
            async with desk.admin(token) as admin:
                await customer.send({"type": "queue:join"})
                await customer.expect("room:joined", room=room)
                await start_call(customer, room)
                await customer.send(offer(2))
                await admin.expect("call:start", call=CALL)
                await admin.expect("rtc:description", call=CALL)
                # Delivered 1 and 2, acknowledged only 1, then the admin's socket drops.
                await admin.send({"type": "rtc:ack", "call": CALL, "ack": 1})
                await admin.send({"type": "call:accept", "call": CALL, "seq": 1})
                await admin.expect("rtc:ack", call=CALL, ack=1)
            for seq in (3, 4):
                await customer.send(candidate(seq, seq))
            await customer.expect("rtc:ack", call=CALL, ack=4)
            calls = {CALL: {"room": room, "delivered": 2}}
            async with desk.connect() as again:
                await again.send({"type": "hello", "role": "admin", "token": token, "calls": calls})
                again.welcome = await again.expect("welcome")
                about_call = await _frames_about(again, CALL, 3)
                assert about_call[0] == {
                    "type": "rtc:resumed",
                    "call": CALL,
                    "delivered": 2,
                    "received": 1,
                    "state": "active",
                }
                assert [(f["type"], f["seq"]) for f in about_call[1:]] == [
                    ("rtc:ice:candidate", 3),
                    ("rtc:ice:candidate", 4),
                ]
                await again.send({"type": "rtc:ack", "call": CALL, "ack": 4})
                await again.absent("rtc:description", within=0.3)
                # The resumed admin goes on with its own next number.
                await again.send({"type": "call:end", "call": CALL, "seq": 2})
                await again.expect("rtc:ack", call=CALL, ack=2)
                ended = await customer.expect("call:end", call=CALL)
                assert (ended["from"], ended["reason"]) == (admin_id(again), "hangup")


async def _drain(client: Client) -> None:
    """Read and drop what already arrived."""
    with contextlib.suppress(TimeoutError):
        while True:
            await client._next(0.05)


def admin_id(client: Client) -> str:
    return str(client.welcome["person"])


async def _frames_about(client: Client, call: str, count: int) -> list[dict[str, Any]]:
    """The next ``count`` frames about ``call``, in the order they came."""
    found: list[dict[str, Any]] = []
    while len(found) < count:
        data = await client._next(10.0)
        if data.get("call") == call:
            found.append(data)
    return found


async def test_only_the_rooms_two_members_signal(serve_desk: Serve) -> None:
    async with serve_desk() as desk, in_room(desk) as (customer, admin, room):
        await start_call(customer, room)
        async with desk.customer("Başka") as stranger:
            await stranger.send(offer(1))
            refused = await stranger.expect("error")
            assert refused["code"] == "not_in_call" and refused["details"] == {"call": CALL}
            await stranger.send({"type": "call:start", "call": "call-0002", "seq": 1, "room": room})
            assert (await stranger.expect("error"))["code"] == "not_in_room"
        await admin.expect("call:start", call=CALL)
        await admin.absent("rtc:description", within=0.3)
        # call:control is the admin's; the customer may not send it.
        await customer.send(
            {"type": "call:control", "call": CALL, "seq": 2, "action": "ice_restart"}
        )
        assert (await customer.expect("error"))["code"] == "forbidden"
        await admin.send({"type": "call:control", "call": CALL, "seq": 1, "action": "audio_only"})
        control = await customer.expect("call:control", call=CALL)
        assert control["action"] == "audio_only"
        # The caller cannot accept its own call: refused, and its numbering goes on.
        await customer.send({"type": "call:accept", "call": CALL, "seq": 2})
        error = await customer.expect("error")
        assert error["code"] == "call_refused" and error["details"]["seq"] == 2
        await customer.expect("rtc:ack", call=CALL, ack=2)
        # One call per room.
        await admin.send({"type": "call:start", "call": "call-0002", "seq": 1, "room": room})
        assert (await admin.expect("error"))["code"] == "call_busy"


async def test_bad_call_frames_get_error_frames(serve_desk: Serve) -> None:
    async with serve_desk() as desk, in_room(desk) as (customer, _admin, room):
        for bad in (
            {"type": "call:start", "call": "short", "seq": 1, "room": room},
            {
                "type": "rtc:description",
                "call": CALL,
                "seq": 0,
                "description": {"type": "offer", "sdp": ""},
            },
            {"type": "rtc:ack", "call": CALL, "ack": -1},
            {"type": "call:stats", "call": CALL, "seq": 1, "packet_loss": 2},
        ):
            await customer.send(bad)
            assert (await customer.expect("error"))["code"] == "validation_failed"
        await start_call(customer, room)
        await customer.send({"type": "rtc:ack", "call": CALL, "ack": 5})
        assert (await customer.expect("error"))["code"] == "invalid_ack"
        await customer.send(candidate(400, 1))
        overflow = await customer.expect("error")
        assert overflow["code"] == "window_overflow" and overflow["details"]["ack"] == 1


async def test_a_full_outbox_pushes_back_on_the_sender(serve_desk: Serve) -> None:
    async with serve_desk(rtc_window_size=3) as desk, in_room(desk) as (customer, admin, room):
        await start_call(customer, room)
        await customer.send(offer(2))
        await customer.send(candidate(3, 1))
        await customer.expect("rtc:ack", call=CALL, ack=3)
        await customer.send(candidate(4, 2))  # the admin acknowledged nothing yet
        refused = await customer.expect("error")
        assert refused["code"] == "window_overflow" and refused["details"]["seq"] == 4
        await customer.expect("rtc:ack", call=CALL, ack=3)
        await admin.expect("rtc:ice:candidate", call=CALL, seq=3)
        await admin.send({"type": "rtc:ack", "call": CALL, "ack": 3})
        await customer.send(candidate(4, 2))
        await customer.expect("rtc:ack", call=CALL, ack=4)
        assert (await admin.expect("rtc:ice:candidate", call=CALL, seq=4))["candidate"]


async def test_closing_the_room_ends_its_call_for_both(serve_desk: Serve) -> None:
    async with serve_desk() as desk, in_room(desk) as (customer, admin, room):
        await start_call(customer, room)
        await admin.send({"type": "call:accept", "call": CALL, "seq": 1})
        await customer.expect("call:accept", call=CALL)
        await admin.send({"type": "chat:end", "room": room})
        for client in (customer, admin):
            ended = await client.expect("call:end", call=CALL)
            assert (ended["from"], ended["reason"]) == ("kervan", "room_closed")


async def test_an_unanswered_call_ends_as_missed(serve_desk: Serve) -> None:
    async with serve_desk() as desk, in_room(desk) as (customer, admin, room):
        await start_call(customer, room)
        relay = desk.runtime.facility(SignalRelay)
        relay.clock = lambda: time.time() + 3600
        await relay.sweep()
        for client in (customer, admin):
            ended = await client.expect("call:end", call=CALL)
            assert (ended["from"], ended["reason"]) == ("kervan", "missed")
        # It rang once: a late accept is taken but changes nothing.
        await admin.send({"type": "call:accept", "call": CALL, "seq": 1})
        await admin.expect("rtc:ack", call=CALL, ack=1)
        await customer.absent("call:accept", within=0.3)


async def test_stats_reach_the_admin_and_the_metrics(serve_desk: Serve) -> None:
    async with serve_desk() as desk, in_room(desk) as (customer, admin, room):
        await start_call(customer, room)
        stats = {
            "type": "call:stats",
            "call": CALL,
            "seq": 2,
            "rtt_ms": 80.0,
            "jitter_ms": 4.0,
            "packet_loss": 0.02,
            "candidate_pair": "relay",
            "region": "eu-1",
            "setup_ms": 1500,
        }
        await customer.send(stats)
        await customer.send(
            {"type": "device:audio-output", "call": CALL, "seq": 3, "device_type": "bluetooth"}
        )
        await customer.send({**stats, "seq": 4, "region": "us-1", "setup_ms": None})
        await customer.expect("rtc:ack", call=CALL, ack=4)
        shown = await admin.expect("call:stats", call=CALL, seq=2)
        assert (shown["rtt_ms"], shown["region"], shown["from"]) == (80.0, "eu-1", room)
        # The audio output is counted, not relayed: the next frame the admin gets is seq 3.
        assert (await admin.expect("call:stats", call=CALL))["seq"] == 3
        await admin.absent("device:audio-output", within=0.2)
        ready = await desk.runtime.readiness_info["calls"]()
        assert ready["active_calls"] >= 1
        assert ready["turn_regions"] == ["eu-1", "us-1"]
        assert ready["turn_failovers"] == 1
        assert ready["mean_rtt_ms"] == 80.0
        from service.metrics import REGISTRY

        def sample(name: str, **labels: str) -> float:
            value = REGISTRY.get_sample_value(name, labels)
            return 0.0 if value is None else value

        assert sample("kervan_audio_output_selection_total", device_type="bluetooth") >= 1
        assert sample("kervan_turn_selected_region_total", region="us-1") >= 1
        assert sample("kervan_rtc_call_setup_seconds_count") >= 1
