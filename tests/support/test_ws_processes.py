"""/ws/support across real ``kervan serve`` processes sharing one Redis and one MariaDB.

Two servers (A and B) run as the production does: separate processes, one granian worker each,
the queue, rooms and presence in Redis, accounts and history in MariaDB. Clients talk to them
over real sockets; admin sessions are written into the servers' Redis namespace the way
``AdminAuth`` reads them (``tests/support/procs.py``).

- a customer on A and an admin on B: queue, chat both ways, typing, presence;
- three customers racing for two admins on both processes, several rounds: served strictly in
  join order, never one customer to two admins;
- a client cut from A (its socket cut, or A killed) resumes on B with exactly what it missed;
- Redis stopped and started mid-chat: localized refusals, nothing crashes, the desk recovers.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
import websockets

from core.support.texts import TEXTS
from service.backends import Backends
from service.backends.keys import SUPPORT_PRESENCE, SUPPORT_PRESENCE_STALE
from service.support.stores import create_wait_queue
from service.support.waitqueue import WaitQueue
from tests.conftest import unique
from tests.services import ServiceState, service_url
from tests.support.procs import (
    Pair,
    RedisProcess,
    Server,
    abort,
    drop_namespace,
    expect_any,
    forget,
    make_admin_token,
    patient_admin,
    patiently,
    redis_process,
    running_pair,
    server_env,
    state_view,
    until,
)
from tests.support.wsclient import Client

pytestmark = pytest.mark.slow

FAST = {"support_sweep_seconds": "0.1"}
UNAVAILABLE_DE = TEXTS["unavailable"]["de"]


@dataclass
class Cluster:
    a: Server
    b: Server
    database_url: str
    redis_url: str
    namespace: str

    def admin_name(self, prefix: str) -> str:
        # Unique in the run's database, which outlives the servers' namespace.
        return unique(prefix)[:64]

    async def admin_token(self, prefix: str) -> tuple[str, str]:
        name = self.admin_name(prefix)
        return name, await make_admin_token(self.database_url, self.redis_url, self.namespace, name)

    async def settled(self) -> None:
        """Every server that was not killed on purpose runs, and the desk is idle: nobody
        waits and no admin is free (each test's admins and customers are gone)."""
        for server in (self.a, self.b):
            assert server.alive or server.killed, server.tail()
        async with state_view(self.redis_url, self.namespace) as state:
            queue = create_wait_queue(state)
            try:
                await until(lambda: _idle(queue), "the desk is idle")
            except AssertionError as exc:
                waiting = [w.customer for w in await queue.waiting()]
                raise AssertionError(
                    f"{exc}: free {await queue.free_admins()}, waiting {waiting}"
                ) from None


async def _idle(queue: WaitQueue) -> bool:
    return not await queue.free_admins() and not await queue.waiting()


@dataclass
class Shared:
    pair: Pair
    database_url: str
    redis_url: str
    namespace: str


@pytest.fixture(scope="module")
def shared(
    mariadb_server: ServiceState,
    redis_server: ServiceState,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Shared]:
    """A and B on the shared Redis, started once for the module (a start costs seconds);
    the tests share them by leaving the desk idle, each with its own admins and customers."""
    database_url = service_url(mariadb_server)
    redis_url = service_url(redis_server)
    namespace = unique("kt")
    folder = tmp_path_factory.mktemp("servers")
    env = server_env(
        database_url=database_url,
        redis_url=redis_url,
        namespace=namespace,
        data_dir=folder / "data",
        **FAST,
    )
    try:
        with running_pair(env, folder) as pair:
            yield Shared(pair, database_url, redis_url, namespace)
    finally:
        drop_namespace(redis_url, namespace)


@pytest.fixture
async def cluster(shared: Shared) -> AsyncIterator[Cluster]:
    shared.pair.revive()  # a server an earlier test killed
    made = Cluster(
        shared.pair.a, shared.pair.b, shared.database_url, shared.redis_url, shared.namespace
    )
    yield made
    await made.settled()


async def join_queue(customer: Client) -> dict[str, Any]:
    await customer.send({"type": "queue:join"})
    return await customer.expect("queue:joined")


# ---------------------------------------------------------------- 1. queue, chat, presence


async def test_a_customer_on_a_and_an_admin_on_b_queue_chat_and_see_presence(
    cluster: Cluster,
) -> None:
    name, token = await cluster.admin_token("mert")
    async with cluster.a.desk.customer("Ayşe") as customer:
        room = customer.welcome["person"]
        joined = await join_queue(customer)
        assert joined["position"] == 1 and joined["eta_seconds"] > 0
        async with cluster.b.desk.admin(token) as admin:
            me = admin.welcome["person"]
            ready = await customer.expect("queue:ready")
            assert ready == {
                "type": "queue:ready",
                "room": room,
                "admin": me,
                "admin_name": name,
            }
            in_room = await customer.expect("room:joined", room=room)
            assert in_room["peer"] == {"id": me, "name": name, "role": "admin"}
            epoch = in_room["epoch"]
            peer = (await admin.expect("room:joined", room=room))["peer"]
            assert peer == {"id": room, "name": "Ayşe", "role": "customer"}

            ack = await customer.chat(room, "Merhaba")
            assert (ack["epoch"], ack["offset"], ack["duplicate"]) == (epoch, 1, False)
            got = await admin.expect("chat:message", offset=1)
            assert (got["text"], got["sender"], got["role"], got["epoch"]) == (
                "Merhaba",
                room,
                "customer",
                epoch,
            )
            ack = await admin.chat(room, "Hoş geldiniz")
            assert ack["offset"] == 2
            got = await customer.expect("chat:message", offset=2)
            assert (got["text"], got["role"], got["name"]) == ("Hoş geldiniz", "admin", name)
            # A sender's own message is placed by its ack: it does not come back to the
            # connection that sent it.
            await customer.absent("chat:message")
            await admin.absent("chat:message")

            await admin.send({"type": "typing", "room": room, "active": True})
            typing = await customer.expect("typing")
            assert typing == {"type": "typing", "room": room, "sender": me, "active": True}
            await customer.send({"type": "typing", "room": room, "active": False})
            typing = await admin.expect("typing")
            assert typing == {"type": "typing", "room": room, "sender": room, "active": False}
            await admin.absent("typing")
            await customer.absent("typing")

            # Serving, the admin is busy: no one is available. Ending the chat frees it.
            await admin.send({"type": "chat:end", "room": room})
            assert (await customer.expect("room:closed"))["room"] == room
            assert (await admin.expect("room:closed"))["room"] == room
            await customer.expect("presence", available=1, online=1)
            forget(customer, "presence")
            await admin.send({"type": "presence:set", "status": "away"})
            away = await customer.expect("presence", available=0)
            assert away == {"type": "presence", "admins": {}, "available": 0, "online": 1}
            forget(customer, "presence")
            await admin.send({"type": "presence:set", "status": "online"})
            await customer.expect("presence", available=1, online=1)
            await customer.absent("chat:message")
            await admin.absent("chat:message")
        # The admin's last connection went: nobody is online any more.
        forget(customer, "presence")
        await customer.expect("presence", available=0, online=0)


# ---------------------------------------------------------------- 2. the race


ROUNDS = 5


async def test_three_customers_racing_for_two_admins_are_served_in_join_order(
    cluster: Cluster,
) -> None:
    a, b = cluster.a, cluster.b
    async with state_view(cluster.redis_url, cluster.namespace) as state:
        queue = create_wait_queue(state)
        for round_ in range(ROUNDS):
            (_, token_a), (_, token_b) = await asyncio.gather(
                cluster.admin_token(f"r{round_}a"), cluster.admin_token(f"r{round_}b")
            )
            async with AsyncExitStack() as stack:
                customers: list[Client] = []
                for position, server in enumerate((a, b, a), start=1):
                    customer = await stack.enter_async_context(server.desk.customer(f"C{position}"))
                    assert (await join_queue(customer))["position"] == position
                    customers.append(customer)
                c1, c2, c3 = customers
                ids = [c.welcome["person"] for c in customers]
                # Both admins log in at the same moment, one on each process.
                admins = list(
                    await asyncio.gather(
                        stack.enter_async_context(a.desk.admin(token_a)),
                        stack.enter_async_context(b.desk.admin(token_b)),
                    )
                )
                await race_round(queue, round_, ids, (c1, c2, c3), admins)
            # Everyone gone: the next round starts with nobody free and nobody waiting.
            await until(lambda: _idle(queue), f"round {round_}: the desk is idle")


async def race_round(
    queue: WaitQueue,
    round_: int,
    ids: list[str],
    customers: tuple[Client, Client, Client],
    admins: list[Client],
) -> None:
    c1, c2, c3 = customers
    admin_ids = [admin.welcome["person"] for admin in admins]
    served: dict[str, str] = {}
    for customer, person in ((c1, ids[0]), (c2, ids[1])):
        ready = await customer.expect("queue:ready")
        assert ready["room"] == person
        served[person] = ready["admin"]
    # One admin each: the two heads went to the two admins, never both to one.
    assert sorted(served.values()) == sorted(admin_ids), (round_, served)
    assert (await c3.expect("queue:position", position=1))["position"] == 1
    for admin, me in zip(admins, admin_ids, strict=True):
        room = (await admin.expect("room:joined"))["room"]
        assert served[room] == me
    for admin in admins:
        await admin.absent("room:joined", within=0.2)
    await c3.absent("queue:ready", within=0.2)
    assert [w.customer for w in await queue.waiting()] == [ids[2]]
    for person, admin in served.items():
        assert await queue.assignment_of_customer(person) == admin
        assert await queue.assignment_of_admin(admin) == person

    # One admin ends its chat: the third customer is its next.
    ending = round_ % 2  # alternate which of the two served customers is let go
    let_go = ids[ending]
    admin_index = admin_ids.index(served[let_go])
    ender, other = admins[admin_index], admins[1 - admin_index]
    await ender.send({"type": "chat:end", "room": let_go})
    assert (await customers[ending].expect("room:closed"))["room"] == let_go
    ready = await c3.expect("queue:ready")
    assert ready["admin"] == admin_ids[admin_index] and ready["room"] == ids[2]
    assert (await ender.expect("room:joined", room=ids[2]))["peer"]["name"] == "C3"
    await other.absent("room:joined", within=0.2)
    for customer in customers:
        await customer.absent("queue:ready", within=0.1)
    assert await queue.waiting() == []

    # Both chats end, so both admins leave free and serve nobody.
    await ender.send({"type": "chat:end", "room": ids[2]})
    await other.send({"type": "chat:end", "room": ids[1 - ending]})
    await c3.expect("room:closed", room=ids[2])
    await customers[1 - ending].expect("room:closed", room=ids[1 - ending])


# ---------------------------------------------------------------- 3. resume on another process


async def test_a_client_cut_from_a_resumes_on_b_with_exactly_what_it_missed(
    cluster: Cluster,
) -> None:
    _, token = await cluster.admin_token("mert")
    async with cluster.b.desk.admin(token) as admin:

        async def cut_socket(customer: Client) -> None:
            abort(customer)

        async def kill_a(customer: Client) -> None:
            cluster.a.kill()

        await resume_after(cluster, admin, cut_socket)
        # The same once more, the process itself gone this time (its worker with it).
        await resume_after(cluster, admin, kill_a)
        assert not cluster.a.alive and cluster.b.alive


async def resume_after(
    cluster: Cluster, admin: Client, cut: Callable[[Client], Awaitable[None]]
) -> None:
    async with cluster.a.desk.customer("Ayşe") as customer:
        room = customer.welcome["person"]
        resume = customer.welcome["resume"]
        await customer.send({"type": "queue:join"})
        epoch = (await customer.expect("room:joined", room=room))["epoch"]
        await admin.expect("room:joined", room=room)
        assert (await customer.chat(room, "1"))["offset"] == 1
        await admin.chat(room, "2")
        assert (await customer.expect("chat:message", offset=2))["text"] == "2"
        await cut(customer)
        with pytest.raises(websockets.exceptions.ConnectionClosed):
            await customer.socket.recv()
    # Said while the customer is away.
    for text in ("3", "4", "5"):
        await admin.chat(room, text)
    async with cluster.b.desk.customer(
        resume=resume, rooms={room: {"epoch": epoch, "offset": 2}}
    ) as back:
        assert back.welcome["person"] == room
        first = await back.expect("resume")
        assert not [f for f in back.frames if f["type"] == "chat:message"], back.frames
        assert first == {
            "type": "resume",
            "room": room,
            "recovered": True,
            "epoch": epoch,
            "last_offset": 5,
            "history_before": None,
        }
        missed = [await back.expect("chat:message") for _ in range(3)]
        assert [(m["offset"], m["text"], m["epoch"]) for m in missed] == [
            (3, "3", epoch),
            (4, "4", epoch),
            (5, "5", epoch),
        ]
        await back.absent("chat:message", within=0.5)
        await back.absent("room:joined", within=0.1)
        # And on from there, live, once.
        await admin.chat(room, "6")
        assert (await back.expect("chat:message"))["offset"] == 6
        assert (await back.chat(room, "7"))["offset"] == 7
        assert (await admin.expect("chat:message", offset=7))["text"] == "7"
        await back.absent("chat:message")
        await admin.send({"type": "chat:end", "room": room})
        await back.expect("room:closed", room=room)
        await admin.expect("room:closed", room=room)
    forget(admin, "chat:message")


# ---------------------------------------------------------------- 4. Redis stopped and started


@dataclass
class Restartable:
    cluster: Cluster
    redis: RedisProcess


@pytest.fixture(scope="module")
def restartable_pair(
    mariadb_server: ServiceState, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Restartable]:
    """A and B on a redis-server of the module's own, which the tests stop and start."""
    database_url = service_url(mariadb_server)
    folder = tmp_path_factory.mktemp("restartable")
    with redis_process(folder) as redis:
        namespace = "kervan"
        env = server_env(
            database_url=database_url,
            redis_url=redis.url,
            namespace=namespace,
            data_dir=folder / "data",
            # An outage fails each call fast instead of waiting on a dead server.
            redis_timeout_seconds="1",
            **FAST,
        )
        with running_pair(env, folder) as pair:
            yield Restartable(Cluster(pair.a, pair.b, database_url, redis.url, namespace), redis)


@pytest.fixture
async def restartable(restartable_pair: Restartable) -> AsyncIterator[Restartable]:
    if not restartable_pair.redis.running:
        restartable_pair.redis.start()  # an earlier test failed while it was stopped
    yield restartable_pair
    if not restartable_pair.redis.running:
        restartable_pair.redis.start()
    await restartable_pair.cluster.settled()


async def test_redis_stopped_and_started_mid_chat(restartable: Restartable) -> None:
    cluster, redis = restartable.cluster, restartable.redis
    a, b = cluster.a, cluster.b
    _, token = await cluster.admin_token("mert")
    async with (
        a.desk.customer("Ayşe") as customer,
        b.desk.customer("Hans", language="de") as hans,
        a.desk.connect() as visitor,
    ):
        room = customer.welcome["person"]
        hello_lea = {"type": "hello", "role": "customer", "name": "Lea", "language": "de"}
        async with b.desk.admin(token) as admin:
            await customer.send({"type": "queue:join"})
            epoch = (await customer.expect("room:joined", room=room))["epoch"]
            await admin.expect("room:joined", room=room)
            await customer.chat(room, "önce")
            await admin.expect("chat:message", offset=1)

            redis.stop()
            # A join is refused, in the customer's language.
            await hans.send({"type": "queue:join"})
            assert await _refusal(hans) == UNAVAILABLE_DE
            # A new visitor is told too, in the language it asked for, and may try again.
            await visitor.send(hello_lea)
            error = await visitor.expect("error", code="support_unavailable")
            assert error["message"] == UNAVAILABLE_DE
            # A message is not taken (no ack), and the sender is told.
            await customer.send({"type": "chat:send", "room": room, "client_id": "x", "text": "?"})
            error = await customer.expect("error", code="support_unavailable")
            assert error["message"] == TEXTS["unavailable"]["tr"]
            # Every socket stays, every process lives and answers.
            for client in (admin, customer, hans):
                await client.send({"type": "ping"})
                await client.expect("pong")
            assert a.alive and b.alive, a.tail() + b.tail()
            assert [await a.health(), await b.health()] == [200, 200]

            redis.start()  # the same port, and empty: every room's past is gone
            # Until each process's pooled connections from before are replaced, a call may
            # still fail: the client is told so and sends the same frame again.
            again = {"type": "chat:send", "room": room, "client_id": "x", "text": "?"}
            ack = await patiently(customer, again, ("chat:ack",), "a chat:send after restart")
            assert ack["epoch"] != epoch and ack["offset"] == 1 and ack["duplicate"] is False
            new_epoch = ack["epoch"]
            # Both sides learn that the room's log started over.
            for client in (customer, admin):
                reset = await client.expect("resume", room=room, timeout=15)
                assert reset["recovered"] is False and reset["epoch"] == new_epoch
                assert reset["last_offset"] >= 1
            ack = await say(admin, room, "tekrar")
            assert (ack["epoch"], ack["offset"]) == (new_epoch, 2)
            got = await customer.expect("chat:message", offset=2)
            assert (got["epoch"], got["text"]) == (new_epoch, "tekrar")
            await say(customer, room, "tamam")
            assert (await admin.expect("chat:message", offset=3))["text"] == "tamam"
            await customer.absent("chat:message")
            # The visitor's hello, sent again, is welcome now.
            welcome = await patiently(visitor, hello_lea, ("welcome",), "the visitor's welcome")
            assert welcome["language"] == "de"

        # New customers are served again, by an admin who logs in anew (sessions were in
        # Redis), once the one before has gone.
        async with state_view(cluster.redis_url, cluster.namespace) as state:
            await until(lambda: _nobody_present(state), "the first admin has gone")
        _, token = await cluster.admin_token("ayla")
        joined = await patiently(hans, {"type": "queue:join"}, ("queue:joined",), "Hans waits")
        assert joined["position"] == 1
        async with patient_admin(a, token) as second:
            hans_room = hans.welcome["person"]
            ready = await hans.expect("queue:ready")
            assert ready["admin"] == second.welcome["person"] and ready["room"] == hans_room
            await second.expect("room:joined", room=hans_room)
            await say(hans, hans_room, "Hallo")
            assert (await second.expect("chat:message", offset=1))["text"] == "Hallo"
            await say(second, hans_room, "Guten Tag")
            assert (await hans.expect("chat:message", offset=2))["text"] == "Guten Tag"
            end = {"type": "chat:end", "room": hans_room}
            await patiently(second, end, ("room:closed",), "the chat ended")
            await hans.expect("room:closed", room=hans_room)
    assert a.alive and b.alive


_said = itertools.count(1)


async def say(client: Client, room: str, text: str) -> dict[str, Any]:
    """A chat message, sent again (same client id) while the desk says it is unavailable."""
    message = {"type": "chat:send", "room": room, "client_id": f"p{next(_said)}", "text": text}
    return await patiently(client, message, ("chat:ack",), f"{text!r} acknowledged")


async def _nobody_present(state: Backends) -> bool:
    """No admin is free, and none beats its presence any more."""
    if await create_wait_queue(state).free_admins():
        return False
    records = await state.hashes.get_all(SUPPORT_PRESENCE)
    stale = float(FAST["support_sweep_seconds"]) * SUPPORT_PRESENCE_STALE + 1
    return all(time.time() - orjson.loads(raw)["seen"] > stale for raw in records.values())


# ---------------------------------------------------------------- after a data loss


async def test_a_connected_admin_serves_again_after_redis_lost_its_state(
    restartable: Restartable,
) -> None:
    cluster, redis = restartable.cluster, restartable.redis
    _, token = await cluster.admin_token("deniz")
    async with cluster.b.desk.admin(token) as admin:
        me = admin.welcome["person"]
        async with state_view(cluster.redis_url, cluster.namespace) as state:
            await until(lambda: _is_free(create_wait_queue(state), me), "the admin is free")
        redis.stop()
        redis.start()
        async with cluster.a.desk.connect() as customer:
            hello = {"type": "hello", "role": "customer", "name": "Can", "language": "en"}
            customer.welcome = await patiently(customer, hello, ("welcome",), "welcome")
            person = customer.welcome["person"]
            join = {"type": "queue:join"}
            found = await patiently(customer, join, ("queue:joined", "queue:ready"), "joined")
            try:
                if found["type"] == "queue:ready":
                    ready = found
                else:
                    ready = await customer.expect("queue:ready", timeout=20)
                assert ready["admin"] == me
            finally:
                # A client of its own: the test's connections from before the restart are dead.
                async with state_view(cluster.redis_url, cluster.namespace) as state:
                    await _let_go(create_wait_queue(state), customer, admin, person)


async def _is_free(queue: WaitQueue, admin: str) -> bool:
    return admin in await queue.free_admins()


async def _let_go(queue: WaitQueue, customer: Client, admin: Client, person: str) -> None:
    """Leave the desk idle for the next test, whatever this one got to."""
    if await queue.position(person) is not None:
        await patiently(customer, {"type": "queue:leave"}, ("queue:left",), "left")
    elif await queue.assignment_of_customer(person) is not None:
        # The admin may learn of the room a moment after the customer did.
        await admin.expect("room:joined", room=person, timeout=15)
        end = {"type": "chat:end", "room": person}
        await patiently(admin, end, ("room:closed",), "chat ended")


async def test_a_chats_history_stays_whole_after_redis_lost_its_state(
    restartable: Restartable,
) -> None:
    cluster, redis = restartable.cluster, restartable.redis
    _, token = await cluster.admin_token("eda")
    async with (
        cluster.b.desk.admin(token) as admin,
        cluster.a.desk.customer("Eda") as customer,
    ):
        room = customer.welcome["person"]
        await customer.send({"type": "queue:join"})
        await customer.expect("room:joined", room=room)
        await admin.expect("room:joined", room=room)
        await customer.chat(room, "bir")
        await admin.chat(room, "iki")
        await until(lambda: _history_is(admin, room, ["bir", "iki"]), "the history before")
        redis.stop()
        redis.start()
        await say(customer, room, "üç")
        await admin.expect("resume", room=room, timeout=15)
        await say(admin, room, "dört")
        await until(
            lambda: _history_is(admin, room, ["bir", "iki", "üç", "dört"]),
            "the history after",
            timeout=5,
        )


async def _history_is(client: Client, room: str, texts: list[str]) -> bool:
    fetch = {"type": "history:fetch", "room": room}
    page = await patiently(client, fetch, ("history:page",), "a history page")
    return [m["text"] for m in page["messages"]] == texts


async def _refusal(client: Client) -> str:
    """The localized text of a refused join: ``queue:refused`` (unavailable) or ``error``."""
    found = await expect_any(client, ("queue:refused", "error"))
    if found["type"] == "queue:refused":
        assert found["reason"] == "unavailable"
    else:
        assert found["code"] == "support_unavailable"
    return str(found["message"])
