"""Two real WebRTC peers (aiortc) negotiate a call through /ws/support on one process: the
offer, the answer and every candidate relayed by kervan's signaling, the media relayed by a real
coturn with the credentials ``GET /rtc/ice-servers`` handed out, and a data-channel message
goes through."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from service.metrics import REGISTRY
from tests.rtc.callclient import CallSide, send_description, take_description
from tests.rtc.peers import Peer, fetch_ice_servers
from tests.rtc.rooms import in_a_room
from tests.support.wsclient import Desk

Serve = Callable[..., AbstractAsyncContextManager[Desk]]
CALL = "call-aiortc-1"


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_two_aiortc_peers_connect_through_the_support_socket(
    serve_relay_desk: Serve,
) -> None:
    async with serve_relay_desk() as desk, in_a_room(desk) as room:
        customer_ice = await fetch_ice_servers(room.http_url, room.resume_token)
        admin_ice = await fetch_ice_servers(room.http_url, room.admin_token)
        caller = CallSide(room.customer, CALL, room.room)
        callee = CallSide(room.admin, CALL, room.room)
        connected_before = sample("kervan_rtc_calls_ended_total", outcome="connected")
        async with Peer(customer_ice, "customer") as customer, Peer(admin_ice, "admin") as admin:
            await caller.send("call:start", room=room.room, media="audio")
            customer.open_channel()
            sent = await send_description(caller, await customer.offer())
            ring = await callee.until("call:start")
            assert (ring["from"], ring["room"]) == (room.customer_id, room.room)
            await callee.send("call:accept")
            taken = await take_description(callee, admin, answer=True)
            assert taken == sent >= 1
            assert admin.pc.localDescription is not None
            await send_description(callee, admin.pc.localDescription)
            await caller.until("call:accept")
            await take_description(caller, customer, answer=False)
            await customer.connected()
            await admin.connected()
            await customer.send("merhaba")
            assert await admin.receive() == "merhaba"
            await admin.send("hoş geldiniz")
            assert await customer.receive() == "hoş geldiniz"
            await caller.send(
                "call:stats", rtt_ms=3.0, candidate_pair="relay", region="local", setup_ms=900
            )
            await caller.send("call:end", reason="hangup")
            assert (await callee.until("call:stats"))["candidate_pair"] == "relay"
            ended = await callee.until("call:end")
            assert (ended["from"], ended["reason"]) == (room.customer_id, "hangup")
            await caller.settle()
            await callee.settle()
        # Every relayed frame was delivered once, in order, on each side.
        for side in (caller, callee):
            assert [f["seq"] for f in side.log] == list(range(1, len(side.log) + 1))
        assert sample("kervan_rtc_calls_ended_total", outcome="connected") == connected_before + 1
