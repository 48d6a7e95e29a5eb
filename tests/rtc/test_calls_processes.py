"""Calls across two real ``kervan serve`` processes sharing Redis and MariaDB: the customer on
A, the admin on B, two aiortc peers negotiating through the signaling relay (media through a
real coturn); and the customer's socket cut in the middle of the negotiation and reconnected to
the other process, where it resumes its call with exactly what it missed and the call connects.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import orjson
import pytest

from tests.conftest import unique
from tests.rtc.callclient import CallSide, send_description, take_description
from tests.rtc.coturn import Coturn
from tests.rtc.peers import Peer, fetch_ice_servers
from tests.services import ServiceState, service_url
from tests.support.procs import (
    Pair,
    Server,
    abort,
    drop_namespace,
    make_admin_token,
    running_pair,
    server_env,
)
from tests.support.wsclient import Client

pytestmark = pytest.mark.slow


@dataclass
class Calls:
    pair: Pair
    database_url: str
    redis_url: str
    namespace: str

    async def admin_token(self) -> str:
        name = unique("rtc")[:64]
        return await make_admin_token(self.database_url, self.redis_url, self.namespace, name)


@pytest.fixture(scope="module")
def calls(
    mariadb_server: ServiceState,
    redis_server: ServiceState,
    coturn: Coturn,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Calls]:
    database_url = service_url(mariadb_server)
    redis_url = service_url(redis_server)
    namespace = unique("kc")
    folder = tmp_path_factory.mktemp("call-servers")
    env = server_env(
        database_url=database_url,
        redis_url=redis_url,
        namespace=namespace,
        data_dir=folder / "data",
        support_sweep_seconds="0.1",
        rtc_ice_servers=orjson.dumps(coturn.ice_servers_setting()).decode(),
        rtc_turn_secrets=",".join(coturn.secrets),
    )
    try:
        with running_pair(env, folder) as pair:
            yield Calls(pair, database_url, redis_url, namespace)
    finally:
        drop_namespace(redis_url, namespace)


@dataclass
class Room:
    room: str
    customer: Client
    admin: Client
    resume: str
    token: str


@asynccontextmanager
async def room_across(calls: Calls, stack: AsyncExitStack) -> AsyncIterator[Room]:
    """A customer on A and an admin on B in one room (the connections live in ``stack``)."""
    token = await calls.admin_token()
    customer = await stack.enter_async_context(calls.pair.a.desk.customer("Ayşe"))
    room = str(customer.welcome["person"])
    await customer.send({"type": "queue:join"})
    admin = await stack.enter_async_context(calls.pair.b.desk.admin(token))
    await customer.expect("room:joined", room=room)
    await admin.expect("room:joined", room=room)
    yield Room(room, customer, admin, str(customer.welcome["resume"]), token)


async def ice(server: Server, bearer: str) -> dict[str, object]:
    return await fetch_ice_servers(server.url, bearer)


async def test_two_peers_on_two_processes_connect(calls: Calls) -> None:
    a, b = calls.pair.a, calls.pair.b
    async with AsyncExitStack() as stack, room_across(calls, stack) as r:
        caller = CallSide(r.customer, "call-procs-1", r.room)
        callee = CallSide(r.admin, "call-procs-1", r.room)
        async with (
            Peer(await ice(a, r.resume), "customer") as customer,
            Peer(await ice(b, r.token), "admin") as admin,
        ):
            await caller.send("call:start", room=r.room, media="video")
            customer.open_channel()
            sent = await send_description(caller, await customer.offer())
            assert (await callee.until("call:start"))["media"] == "video"
            await callee.send("call:accept")
            assert await take_description(callee, admin, answer=True) == sent
            assert admin.pc.localDescription is not None
            await send_description(callee, admin.pc.localDescription)
            await caller.until("call:accept")
            await take_description(caller, customer, answer=False)
            await customer.connected()
            await admin.connected()
            await admin.send("A'dan B'ye")
            assert await customer.receive() == "A'dan B'ye"
            await callee.send("call:end")
            assert (await caller.until("call:end"))["reason"] == "hangup"


async def test_a_caller_cut_mid_negotiation_resumes_on_the_other_process(calls: Calls) -> None:
    a, b = calls.pair.a, calls.pair.b
    async with AsyncExitStack() as stack, room_across(calls, stack) as r:
        caller = CallSide(r.customer, "call-procs-2", r.room)
        callee = CallSide(r.admin, "call-procs-2", r.room)
        async with (
            Peer(await ice(a, r.resume), "customer") as customer,
            Peer(await ice(b, r.token), "admin") as admin,
        ):
            await caller.send("call:start", room=r.room)
            customer.open_channel()
            sent = await send_description(caller, await customer.offer())
            await caller.settle()
            # The customer's network drops: its socket to A is cut without a close.
            abort(r.customer)
            # Meanwhile the admin accepts and answers; all of it waits in the customer's outbox.
            await callee.until("call:start")
            await callee.send("call:accept")
            assert await take_description(callee, admin, answer=True) == sent
            assert admin.pc.localDescription is not None
            answered = await send_description(callee, admin.pc.localDescription)
            await callee.settle()
            # The customer comes back on B, naming its call and the last frame it delivered.
            again = await stack.enter_async_context(b.desk.connect())
            await again.send(
                {
                    "type": "hello",
                    "role": "customer",
                    "resume": r.resume,
                    "calls": caller.position(),
                }
            )
            first = orjson.loads(await again.socket.recv())
            assert first["type"] == "welcome" and first["person"] == r.room
            caller.moved_to(again)
            resumed = await _first_about(again, caller.call)
            assert resumed == {
                "type": "rtc:resumed",
                "call": caller.call,
                "delivered": 0,
                "received": caller.next_seq - 1,
                "state": "active",
            }
            assert (await caller.next())["type"] == "call:accept"
            assert await take_description(caller, customer, answer=False) == answered
            await customer.connected()
            await admin.connected()
            await customer.send("B üzerinden")
            assert await admin.receive() == "B üzerinden"
            # Exactly what was missed: accept, answer, the candidates and their end, once each.
            assert [f["seq"] for f in caller.log] == list(range(1, answered + 4))


async def _first_about(client: Client, call: str) -> dict[str, object]:
    while True:
        data: dict[str, object] = orjson.loads(await client.socket.recv())
        if data.get("call") == call:
            return data
