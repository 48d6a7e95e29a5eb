"""/ws/support in one process (embedded backends): the queue, chat, resume, refusals."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
import websockets
from sqlalchemy import select

from service.db.tables.crm import crm_contacts, crm_convos, crm_messages
from service.support.desk import REASSERT_EVERY_SWEEPS, SupportDesk
from service.support.history import HistoryWriter
from tests.support.procs import until
from tests.support.wsclient import Desk, admin_token

Serve = Callable[..., AbstractAsyncContextManager[Desk]]


async def test_bad_frames_get_error_frames_and_the_connection_stays(serve_desk: Serve) -> None:
    async with serve_desk() as desk, desk.connect() as client:
        await client.send("not json")
        assert (await client.expect("error"))["code"] == "invalid_json"
        await client.send({"type": "chat:send", "room": "x", "client_id": "1", "text": "hi"})
        assert (await client.expect("error"))["code"] == "hello_required"
        await client.send({"type": "hello", "role": "customer", "name": "x" * 65})
        error = await client.expect("error")
        assert error["code"] == "validation_failed" and error["details"][0]["loc"] == ["name"]
        await client.send({"type": "hello", "role": "customer", "name": "\u202eevil"})
        assert (await client.expect("error"))["code"] == "validation_failed"
        await client.send({"type": "hello", "role": "customer", "name": "Ayşe", "language": "de"})
        welcome = await client.expect("welcome")
        assert welcome["role"] == "customer" and welcome["language"] == "de"
        assert welcome["person"].startswith("cu_") and len(welcome["resume"]) >= 32
        await client.send({"type": "nope"})
        error = await client.expect("error")
        assert error["code"] == "unknown_type" and "chat:send" in error["details"]["known"]
        await client.send({"type": "chat:send", "room": "cu_x", "client_id": "a", "text": "hi"})
        assert (await client.expect("error"))["code"] == "not_in_room"
        await client.send({"type": "presence:set", "status": "online"})
        assert (await client.expect("error"))["code"] == "forbidden"
        await client.send("x" * 20_000)
        assert (await client.expect("error"))["code"] == "frame_too_large"
        await client.send({"type": "history:fetch", "room": "cu_x", "before": "12"})
        error = await client.expect("error")
        assert error["code"] == "validation_failed" and error["details"][0]["loc"] == ["before"]
        await client.send({"type": "message:leave", "text": "x" * 4001})
        error = await client.expect("error")
        assert error["code"] == "validation_failed" and error["details"][0]["loc"] == ["text"]
        await client.send({"type": "ping"})
        await client.expect("pong")


async def test_a_foreign_origin_is_told_and_closed(serve_desk: Serve) -> None:
    async with serve_desk(allowed_origins="https://shop.example") as desk:
        async with desk.connect(Origin="https://evil.example") as client:
            assert (await client.expect("error"))["code"] == "origin_not_allowed"
            with pytest.raises((AssertionError, websockets.exceptions.ConnectionClosed)):
                await client.expect("welcome", timeout=2)
            assert client.socket.close_code == 1008
        async with desk.connect(Origin="https://shop.example") as client:
            await client.send({"type": "hello", "role": "customer", "name": "A"})
            await client.expect("welcome")


async def test_an_admin_without_a_session_is_refused_with_a_reason(serve_desk: Serve) -> None:
    async with serve_desk() as desk, desk.connect() as client:
        await client.send({"type": "hello", "role": "admin", "token": "x" * 43})
        assert (await client.expect("error"))["code"] == "forbidden"
        with pytest.raises((AssertionError, websockets.exceptions.ConnectionClosed)):
            await client.expect("welcome", timeout=2)
        assert client.socket.close_code == 4003


async def test_customers_wait_in_order_and_the_head_is_served(serve_desk: Serve) -> None:
    async with serve_desk() as desk:
        token = await admin_token(desk.runtime, "mert")
        async with desk.customer("Ayşe") as first, desk.customer("Hans", language="de") as second:
            await first.send({"type": "queue:join"})
            joined = await first.expect("queue:joined")
            assert joined["position"] == 1
            assert joined["eta_low"] <= joined["eta_seconds"] <= joined["eta_high"]
            await second.send({"type": "queue:join"})
            assert (await second.expect("queue:joined"))["position"] == 2
            # Joining again does not move anyone.
            await second.send({"type": "queue:join"})
            assert (await second.expect("queue:joined"))["position"] == 2
            async with desk.admin(token) as admin:
                ready = await first.expect("queue:ready")
                room = first.welcome["person"]
                assert ready["room"] == room and ready["admin_name"] == "mert"
                joined_room = await admin.expect("room:joined", room=room)
                assert joined_room["peer"] == {"id": room, "name": "Ayşe", "role": "customer"}
                await second.expect("queue:position", position=1)
                # Views follow each change; the last one shows the customer served and the
                # other waiting.
                state = await admin.expect("desk:state")
                while state["serving"] is None or len(state["waiting"]) != 1:
                    state = await admin.expect("desk:state")
                assert state["serving"]["customer"] == room
                assert [w["name"] for w in state["waiting"]] == ["Hans"]

                ack = await first.chat(room, "Merhaba")
                assert ack["offset"] == 1 and ack["duplicate"] is False
                got = await admin.expect("chat:message", offset=1)
                assert (
                    got["text"] == "Merhaba" and got["sender"] == room and got["role"] == "customer"
                )
                await admin.chat(room, "Hoş geldiniz")
                echoed = await first.expect("chat:message", offset=2)
                assert echoed["role"] == "admin" and echoed["name"] == "mert"

                await admin.send({"type": "typing", "room": room, "active": True})
                typing = await first.expect("typing")
                assert typing["sender"] == admin.welcome["person"] and typing["active"] is True
                await admin.absent("typing")

                await admin.send({"type": "chat:end", "room": room})
                assert (await first.expect("room:closed"))["room"] == room
                assert (await admin.expect("room:closed"))["room"] == room
                # The admin is online, so the next customer is served at once.
                ready = await second.expect("queue:ready")
                assert ready["room"] == second.welcome["person"]
                await first.send(
                    {"type": "chat:send", "room": room, "client_id": "late", "text": "x"}
                )
                assert (await first.expect("error"))["code"] == "not_in_room"


async def test_a_resent_client_id_is_stored_once(serve_desk: Serve) -> None:
    async with serve_desk() as desk:
        token = await admin_token(desk.runtime, "mert")
        async with desk.admin(token) as admin, desk.customer() as customer:
            room = customer.welcome["person"]
            await customer.send({"type": "queue:join"})
            await customer.expect("queue:ready")
            first = await customer.chat(room, "bir", client_id="c-1")
            again = await customer.chat(room, "bir", client_id="c-1")
            assert again["duplicate"] is True and again["offset"] == first["offset"]
            await customer.chat(room, "iki", client_id="c-2")
            assert (await admin.expect("chat:message", offset=1))["text"] == "bir"
            assert (await admin.expect("chat:message", offset=2))["text"] == "iki"
            await admin.absent("chat:message")


async def test_every_device_of_a_person_gets_every_message(serve_desk: Serve) -> None:
    async with serve_desk() as desk:
        token = await admin_token(desk.runtime, "mert")
        async with desk.admin(token) as admin, desk.customer() as phone:
            room = phone.welcome["person"]
            await phone.send({"type": "queue:join"})
            await phone.expect("queue:ready")
            async with (
                desk.customer(resume=phone.welcome["resume"]) as laptop,
                desk.admin(token) as admin_tab,
            ):
                assert laptop.welcome["person"] == room
                await laptop.expect("room:joined", room=room)
                await admin.expect("room:joined", room=room)
                await admin_tab.expect("room:joined", room=room)
                ack = await admin.chat(room, "tek")
                for client in (phone, laptop, admin_tab):
                    assert (await client.expect("chat:message", offset=1))["text"] == "tek"
                # The sending connection has the message's place from its ack.
                assert ack["offset"] == 1
                await admin.absent("chat:message")
                # The laptop's message reaches the phone and both admins, not the laptop.
                ack = await laptop.chat(room, "iki")
                for client in (phone, admin, admin_tab):
                    assert (await client.expect("chat:message", offset=2))["text"] == "iki"
                assert ack["offset"] == 2
                await laptop.absent("chat:message")


async def test_a_reconnecting_client_gets_exactly_what_it_missed(serve_desk: Serve) -> None:
    async with serve_desk() as desk:
        token = await admin_token(desk.runtime, "mert")
        async with desk.admin(token) as admin:
            async with desk.customer() as customer:
                room = customer.welcome["person"]
                resume = customer.welcome["resume"]
                await customer.send({"type": "queue:join"})
                joined = await customer.expect("room:joined")
                epoch = joined["epoch"]
                await admin.expect("room:joined", room=room)
                await admin.chat(room, "1")
                await customer.expect("chat:message", offset=1)
            # Dropped: three messages go while the customer is away.
            for n in (2, 3, 4):
                await admin.chat(room, str(n))
            async with desk.customer(
                resume=resume, rooms={room: {"epoch": epoch, "offset": 1}}
            ) as back:
                first = await back.expect("resume")
                assert first == {
                    "type": "resume",
                    "room": room,
                    "recovered": True,
                    "epoch": epoch,
                    "last_offset": 4,
                    "history_before": None,
                }
                texts = [(await back.expect("chat:message"))["text"] for _ in range(3)]
                assert texts == ["2", "3", "4"]
                await back.absent("chat:message")
            async with desk.customer(
                resume=resume, rooms={room: {"epoch": "other", "offset": 2}}
            ) as stale:
                reset = await stale.expect("resume")
                assert reset["recovered"] is False and reset["epoch"] == epoch
                assert reset["last_offset"] == 4
                await stale.absent("chat:message")
                # The database is written behind the stream: wait for it.
                await desk.runtime.facility(HistoryWriter).flush()
                await stale.send({"type": "history:fetch", "room": room})
                page = await stale.expect("history:page", timeout=15)
                assert [m["text"] for m in page["messages"]] == ["1", "2", "3", "4"]
                assert page["next_before"] is None
                await stale.send({"type": "history:fetch", "room": room, "limit": 3})
                newest = await stale.expect("history:page")
                assert [m["text"] for m in newest["messages"]] == ["2", "3", "4"]
                await stale.send(
                    {"type": "history:fetch", "room": room, "before": newest["next_before"]}
                )
                older = await stale.expect("history:page")
                assert [m["text"] for m in older["messages"]] == ["1"]
                assert older["next_before"] is None


async def test_the_waiting_list_has_a_capacity_and_refuses_in_the_customers_language(
    serve_desk: Serve,
) -> None:
    async with (
        serve_desk(support_queue_capacity=1) as desk,
        desk.customer("A") as first,
        desk.customer("B", language="de") as second,
    ):
        await first.send({"type": "queue:join"})
        await first.expect("queue:joined")
        await second.send({"type": "queue:join"})
        refused = await second.expect("queue:refused")
        assert refused["reason"] == "full" and "Minuten" in refused["message"]
        assert refused["eta_seconds"] > 0


async def test_without_a_queue_busy_means_refused(serve_desk: Serve) -> None:
    async with serve_desk(support_queue_enabled=False) as desk:
        token = await admin_token(desk.runtime, "mert")
        async with (
            desk.admin(token),
            desk.customer("A") as first,
            desk.customer("B", language="en") as second,
        ):
            await first.send({"type": "queue:join"})
            await first.expect("queue:ready")
            await second.send({"type": "queue:join"})
            refused = await second.expect("queue:refused")
            assert refused["reason"] == "all_busy" and "agents are busy" in refused["message"]


async def test_a_dropped_waiting_customer_keeps_the_place_for_the_grace_period(
    serve_desk: Serve,
) -> None:
    async with serve_desk(support_grace_seconds=1.5) as desk:
        async with desk.customer("A") as first:
            await first.send({"type": "queue:join"})
            await first.expect("queue:joined")
            resume = first.welcome["resume"]
        async with desk.customer("B") as second:
            await second.send({"type": "queue:join"})
            assert (await second.expect("queue:joined"))["position"] == 2
            async with desk.customer(resume=resume) as back:
                # Back within the grace: still first.
                assert (await back.expect("queue:position"))["position"] == 1
            # Gone for good: after the grace the second moves up.
            assert (await second.expect("queue:position", timeout=10))["position"] == 1
            queue = desk.runtime.facility(SupportDesk).queue
            assert [w.customer for w in await queue.waiting()] == [second.welcome["person"]]


async def test_the_longest_wait_offers_a_message_which_lands_in_the_crm(serve_desk: Serve) -> None:
    async with serve_desk(support_max_wait_seconds=10) as desk:
        support = desk.runtime.facility(SupportDesk)
        async with desk.customer("Ayşe", language="en") as customer:
            await customer.send({"type": "queue:join"})
            await customer.expect("queue:joined")
            # Time passes for the desk: the sweep sees the wait exceeded.
            real = support.clock
            support.clock = lambda: real() + 11
            timeout = await customer.expect("queue:timeout")
            assert "leave a message" in timeout["message"]
            assert "message:leave" in timeout["options"]
            support.clock = real
            await customer.send(
                {"type": "message:leave", "text": "Please call me", "email": "a@b.co"}
            )
            stored = await customer.expect("message:stored")
            await customer.send({"type": "callback:request", "phone": "+905551112233"})
            assert (await customer.expect("error"))["code"] == "consent_required"
        async with desk.runtime.db.connect() as conn:
            convo = (
                await conn.execute(
                    select(crm_convos).where(crm_convos.c.id == stored["conversation"])
                )
            ).one()
            assert convo.channel == "web"
            contact = (
                await conn.execute(
                    select(crm_contacts).where(crm_contacts.c.id == convo.contact_id)
                )
            ).one()
            assert contact.name == "Ayşe"
            bodies = [
                r.body
                for r in await conn.execute(
                    select(crm_messages).where(crm_messages.c.convo_id == convo.id)
                )
            ]
            assert bodies == ["Please call me"]
        assert await support.queue.waiting() == []


async def test_chat_history_is_a_web_conversation_in_the_crm(serve_desk: Serve) -> None:
    async with serve_desk() as desk:
        token = await admin_token(desk.runtime, "mert")
        async with desk.admin(token) as admin, desk.customer("Zeynep") as customer:
            room = customer.welcome["person"]
            await customer.send({"type": "queue:join"})
            await customer.expect("queue:ready")
            await admin.expect("room:joined", room=room)
            await customer.chat(room, "soru", client_id="q1")
            await customer.chat(room, "soru", client_id="q1")
            await admin.chat(room, "cevap", client_id="a1")
        await desk.runtime.facility(HistoryWriter).flush()
        async with desk.runtime.db.connect() as conn:
            rows: list[Any] = list(
                await conn.execute(
                    select(crm_messages, crm_convos.c.channel)
                    .join(crm_convos, crm_convos.c.id == crm_messages.c.convo_id)
                    .order_by(crm_messages.c.id)
                )
            )
        assert [(r.body, r.direction, r.channel) for r in rows] == [
            ("soru", "in", "web"),
            ("cevap", "out", "web"),
        ]


async def test_a_silent_client_is_closed_after_two_heartbeats(serve_desk: Serve) -> None:
    async with serve_desk(support_heartbeat_seconds=0.2) as desk, desk.connect() as client:
        await client.send({"type": "hello", "role": "customer", "name": "A"})
        # Read nothing (pings unanswered) for a while.
        await asyncio.sleep(1.0)
        with pytest.raises((AssertionError, websockets.exceptions.ConnectionClosed)):
            while True:
                await asyncio.wait_for(client.socket.recv(), 5)
        assert client.socket.close_code == 4000


async def test_a_new_waiting_customer_is_announced_on_telegram(serve_desk: Serve) -> None:
    from tests.fakes.telegram_server import FakeTelegram

    with FakeTelegram() as fake:
        async with (
            serve_desk(
                telegram_bot_token=fake.token,
                telegram_chat_id="4242",
                telegram_base_url=fake.base_url,
                telegram_language="en",
                # Scaled mode runs workers apart; here one runs in the API process for both.
                queue_embedded_worker=True,
            ) as desk,
            desk.customer("Zeynep Kaya") as customer,
        ):
            await customer.send({"type": "queue:join"})
            await customer.expect("queue:joined")
            assert await asyncio.to_thread(lambda: fake.wait_for(lambda: bool(fake.delivered)))
            [sent] = fake.delivered
            assert sent["chat_id"] in (4242, "4242") and "Zeynep Kaya" in sent["text"]


async def test_customers_see_when_an_admin_is_available(serve_desk: Serve) -> None:
    async with serve_desk() as desk:
        token = await admin_token(desk.runtime, "mert")
        async with desk.customer() as customer:
            assert (await customer.expect("presence"))["available"] == 0
            async with desk.admin(token) as admin:
                seen = await customer.expect("presence", available=1)
                assert seen["online"] == 1 and seen["admins"] == {}
                await admin.send({"type": "presence:set", "status": "away"})
                await customer.expect("presence", available=0, online=1)
                mine = await admin.expect("presence", available=0)
                assert mine["admins"] == {admin.welcome["person"]: "away"}
                # Away: a new customer waits instead of being served.
                await customer.send({"type": "queue:join"})
                assert (await customer.expect("queue:joined"))["position"] == 1
                await admin.send({"type": "presence:set", "status": "online"})
                await customer.expect("queue:ready")
                await admin.expect("presence", admins={admin.welcome["person"]: "busy"})
            await customer.expect("presence", online=0)


async def test_a_call_back_needs_granted_whatsapp_consent(serve_desk: Serve) -> None:
    from service.consent.facility import ConsentFacility

    async with serve_desk() as desk:
        consent = desk.runtime.facility(ConsentFacility)
        await consent.record("anon_granted", {"whatsapp": "granted"}, source="banner")
        await consent.record("anon_denied", {"whatsapp": "denied"}, source="banner")
        async with desk.customer("Ayşe") as customer:
            await customer.send({"type": "queue:join"})
            await customer.expect("queue:joined")
            await customer.send(
                {
                    "type": "callback:request",
                    "phone": "+905551112233",
                    "consent_subject": "anon_denied",
                }
            )
            assert (await customer.expect("error"))["code"] == "consent_required"
            await customer.send(
                {
                    "type": "callback:request",
                    "phone": "+905551112233",
                    "consent_subject": "anon_granted",
                }
            )
            stored = await customer.expect("callback:stored")
            assert "WhatsApp" in stored["message"]
            await customer.expect("queue:left")
        support = desk.runtime.facility(SupportDesk)
        assert await support.queue.waiting() == []
        async with desk.runtime.db.connect() as conn:
            row = (
                await conn.execute(
                    select(crm_messages).where(crm_messages.c.convo_id == stored["conversation"])
                )
            ).one()
        assert row.kind == "callback_request" and row.payload["phone"] == "+905551112233"


async def test_a_database_failure_is_told_and_the_connection_stays(
    serve_desk: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.errors import StorageError
    from service.support import history

    async def down(*_args: Any, **_kwargs: Any) -> int:
        raise StorageError("database unavailable")

    monkeypatch.setattr(history, "store_message", down)
    async with serve_desk() as desk, desk.customer("Ayşe", language="de") as customer:
        await customer.send({"type": "message:leave", "text": "Hallo"})
        error = await customer.expect("error")
        assert error["code"] == "support_unavailable" and "vorübergehend" in error["message"]
        await customer.send({"type": "ping"})
        await customer.expect("pong")


async def test_a_stray_online_admin_is_offered_again_every_few_sweeps(serve_desk: Serve) -> None:
    """An online admin neither free nor serving (the backend lost the free set, say) takes
    customers again, at the next sweep that repairs: one in ``REASSERT_EVERY_SWEEPS``."""
    # The test runs every sweep itself.
    async with serve_desk(support_sweep_seconds=60) as desk:
        runtime_desk = desk.runtime.facility(SupportDesk)
        queue = runtime_desk.queue
        token = await admin_token(desk.runtime, "mert")
        async with desk.admin(token) as admin:
            me = admin.welcome["person"]
            await admin.expect("presence", available=1)  # told once the admin is free
            assert me in await queue.free_admins()
            # The first sweep repairs.
            await queue.admin_away(me)
            await runtime_desk.sweep()
            assert me in await queue.free_admins()
            # The next ones look again only after REASSERT_EVERY_SWEEPS.
            await queue.admin_away(me)
            for _ in range(REASSERT_EVERY_SWEEPS - 1):
                await runtime_desk.sweep()
                assert me not in await queue.free_admins()
            await runtime_desk.sweep()
            assert me in await queue.free_admins()


async def test_a_member_whose_room_join_failed_is_joined_by_the_next_sweep(
    serve_desk: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The assignment is made, but the state backend fails every read that would join the
    customer's connection to the room (the join's own tell, the notice's, the refresh after
    it): the customer is told, and the next sweep, once the backend answers, joins both."""
    from core.errors import StateBackendError

    async with serve_desk(support_sweep_seconds=60) as desk:
        runtime_desk = desk.runtime.facility(SupportDesk)
        token = await admin_token(desk.runtime, "mert")
        async with desk.admin(token) as admin:
            await admin.expect("presence", available=1)
            real_epoch = runtime_desk.rooms.epoch
            failures: list[str] = []

            async def epoch(room: str) -> tuple[str, int]:
                if down:
                    failures.append(room)
                    raise StateBackendError("redis script support_room_since failed")
                return await real_epoch(room)

            down = True
            monkeypatch.setattr(runtime_desk.rooms, "epoch", epoch)
            async with desk.customer("Ayşe") as customer:
                room = customer.welcome["person"]
                await customer.send({"type": "queue:join"})
                assert (await customer.expect("error"))["code"] == "support_unavailable"

                async def tried_thrice() -> bool:
                    # The join's tell, the notice's tell and the refresh the notice asks for.
                    return len(failures) >= 3

                await until(tried_thrice, "three failed joins")
                assert set(failures) == {room}
                assert await runtime_desk.queue.assignment_of_customer(room) is not None
                down = False
                # The old code had nothing left that would join the customer; now the sweep
                # refreshes (unless a refresh already pending got there first: either way,
                # the customer is joined).
                await runtime_desk.sweep()
                ready = await customer.expect("queue:ready")
                assert ready["room"] == room
                await customer.expect("room:joined", room=room)
                await admin.expect("room:joined", room=room)
                await customer.chat(room, "Merhaba")
                got = await admin.expect("chat:message", offset=1)
                assert got["text"] == "Merhaba"
