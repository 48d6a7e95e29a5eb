"""Live-support relay, side by side: kervan's ``/ws/support`` against python-socketio on Redis.

Both servers run as real processes on the machine's Redis (127.0.0.1:6379), served the same way
(granian, one worker each, uvloop), and are driven by the same asyncio load generator over raw
WebSocket connections (no Socket.IO client library, so the client side costs the same; the
lean client of ``bench/wsclient.py`` by default, ``--client websockets`` for the library's):

- **kervan**: ``kervan serve`` in scaled mode (``KERVAN_REDIS_URL``, a namespace of its own; a
  throw-away MariaDB database, where the chat history is written behind the room stream by one
  ``kervan worker`` beside the servers, as a scaled deployment runs it; its CPU and memory are
  counted with the servers').
  Customers say ``hello`` and ``queue:join``; admins say ``hello`` with a session token. The
  desk serves one customer per admin, so 500 pairs need 500 admins: the bench creates 500 admin
  accounts in the database and a session for each in the server's Redis namespace, as
  ``tests/support/wsclient.py`` ``admin_token`` does in-process. Messages are ``chat:send`` ->
  ``chat:ack`` to the sender (with the message's offset) and ``chat:message`` to every other
  connection in the room, as socket.io's relay skips the sender.
  Clients are set up 25 at a time (``KERVAN_SETUP_CONCURRENCY``, see there why), and the load
  starts once the servers are quiet again.
- **socket.io**: ``bench/baselines/socketio_server.py``, ``socketio.AsyncServer`` with
  ``socketio.AsyncRedisManager`` (its own pub/sub channel) on a blocking pool of
  ``--socketio-pool`` Redis connections, as many as kervan's pool; ``sio stock`` is the same app
  with the manager's own Redis client, whose unbounded pool opens a connection per publish in
  flight. The load generator speaks Engine.IO v4 / Socket.IO v5 over WebSocket itself
  (``EIO=4&transport=websocket``, ``0{...}`` open, ``40`` connect, ``42[...]`` events, ``43``
  acks, ``2`` ping answered with ``3``). ``join`` puts a connection in a room, ``chat`` is
  acknowledged to the sender and relayed to the other member.

Each case connects 1,000 clients, 500 customer/admin pairs each in a room of its own; every
customer sends 100-byte texts carrying the send time, and the admin's side measures the delivery
latency (one clock: the load generator's). The generator is one event loop for a thousand
connections, so it takes every frame in the read's own callback (``LeanSocket.hand_over``):
stamped when its bytes were read, and at full load the next message sent from the ack's
callback. Until 2026-12-06 a reader task per connection took the frames, and a customer's
sender task sent: a frame read at the start of a busy loop turn waited for the turn's other
callbacks before its time was taken, which at kervan's full load was 26 ms of a 67 ms p50 and
45 ms of a 151 ms p99, at socket.io's under 1 ms (one run, both times taken side by side), and
the tasks' wake-ups cost the generator about a fifth of its CPU per message, on the cores the
servers use. ``--client websockets`` still reads in tasks. Two loads per case, in this
order: ``rate``, a fixed total offered rate (``--rate``, each customer evenly paced, the
customers staggered), for latency at the same load, then ``max``, each customer keeping
``--window`` messages unacknowledged (the server's capacity). Also measured: each
message's send to its ack at the sender (a server that acks late holds the window, and so its
clients, longer than its delivery latency shows). Throughput is what admins received per
second within the measured window (after a warm-up); a ``chat:send`` answered with an error is
counted as refused and frees its window slot.

Cases: one server process; two processes on the same Redis (kervan: also the same database),
every customer on the first and every admin on the second, so every message crosses processes.
Before the one-process load, memory per idle connection: the server's RSS (its whole process
tree) before and after opening ``--idle`` connections (kervan: customers after ``welcome``;
socket.io: connected to the namespace), divided by their number, beside the same for a bare
ASGI WebSocket app on granian (``bench/baselines/bare_websocket.py``, the floor).

Also shown: server CPU per 1,000 delivered messages (the process trees, from /proc; steadier
than msg/s on a shared machine), Redis CPU per 1,000 and Redis commands per message (the whole
server's ``INFO``: commands inside a Lua script count, and so would another client's), the load
generator's own CPU (near one core, the client would bound the figure), and for kervan how far
the chat history in the database is behind what was acknowledged.

Each case runs ``--trials`` times (3 by default), kervan and socket.io taking turns (first in one
trial, last in the next), so a machine slowed down for a minute weighs on both: on this shared
2-core machine one run's full-load p99 moved by a factor of two from one run to the next. The
report lists every trial and judges the goal on the trials' medians, saying in how many trials
it was met. Idle memory and the stock socket.io client are measured in the first trial only.
The trials share one MariaDB database: a later kervan trial writes into tables that already hold
the earlier trials' chat history.

Prints a table with the ratios and writes bench/results/support.json.

    .venv/bin/python bench/bench_support.py [--seconds 10] [--pairs 500] [--window 2]
        [--rate 500] [--idle 1000] [--cases one,two] [--servers kervan,socketio,socketio-stock]
        [--trials 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.loadgen import (  # noqa: E402
    free_port,
    kervan_server_env,
    process_server,
    stop_process,
)
from service.gc_policy import NO_AUTOMATIC_FULL, YOUNG_THRESHOLD  # noqa: E402

RUN = uuid.uuid4().hex[:8]
ADMIN_KEY = "bench-admin-key"
ORIGIN = "https://example.com"
#: As bench_http: one granian worker, uvloop, one runtime thread (``kervan serve``'s defaults).
GRANIAN_FLAGS = ["--interface", "asgi", "--loop", "uvloop", "--workers", "1"]
GRANIAN_FLAGS += ["--runtime-threads", "1", "--backlog", "1024"]
TEXT_BYTES = 100
#: Connections opened at once while setting up (a burst beyond the backlog only costs retries).
CONNECT_CONCURRENCY = 25
SETUP_TIMEOUT = 240.0
#: kervan clients set up at once. Each admin's arrival and each customer's assignment costs
#: every process a few Redis calls and a frame to each of its clients (presence, the desk view
#: to every admin). (Before the desk's refresh read all assignments at once, it was a Redis call
#: per admin, and 25 at once timed the pool's waits out: ``support_unavailable`` to a ``hello``;
#: the bench then set up 4 at a time.) A ``hello`` so refused is sent again.
KERVAN_SETUP_CONCURRENCY = 25
HELLO_ATTEMPTS = 6


# ---------------------------------------------------------------- processes: RSS and CPU


def _proc_read(name: str) -> Iterator[tuple[int, str]]:
    """(pid, the text of ``/proc/<pid>/<name>``) for every process still there when read."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            yield int(entry), Path(f"/proc/{entry}/{name}").read_text()
        except OSError:
            continue


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for pid, stat in _proc_read("stat"):
        ppid = int(stat.rpartition(")")[2].split()[1])
        tree.setdefault(ppid, []).append(pid)
    return tree


def tree_pids(pid: int) -> list[int]:
    tree = _children()
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        found.append(current)
        stack.extend(tree.get(current, ()))
    return found


def tree_cpu_seconds(pid: int) -> float:
    return processes_cpu_seconds(tree_pids(pid))


#: What a MariaDB (or MySQL) server's process is called.
DATABASE_SERVERS = ("mariadbd", "mysqld")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def local_database_pids(database_url: str) -> list[int]:
    """The database server's processes when it runs on this machine (the URL's host is a
    loopback one): kervan's chat history costs the database's CPU too, beside the worker's and
    Redis's. Empty when the server is elsewhere: its CPU is then not measured."""
    from sqlalchemy.engine import make_url

    if (make_url(database_url).host or "127.0.0.1") not in LOOPBACK:
        return []
    return [pid for pid, name in _proc_read("comm") if name.strip() in DATABASE_SERVERS]


def processes_cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes (not their children)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def tree_rss_bytes(pid: int) -> int:
    total = 0
    for current in tree_pids(pid):
        try:
            status = Path(f"/proc/{current}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def redis_cpu_seconds(redis_url: str) -> float:
    from redis.asyncio import Redis

    client = Redis.from_url(redis_url)
    try:
        info = await client.info("cpu")
    finally:
        await client.aclose()
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


async def redis_command_calls(redis_url: str) -> dict[str, int]:
    """Calls per command since the Redis server started (``INFO commandstats``)."""
    from redis.asyncio import Redis

    client = Redis.from_url(redis_url)
    try:
        info = await client.info("commandstats")
    finally:
        await client.aclose()
    return {name.removeprefix("cmdstat_"): int(stats["calls"]) for name, stats in info.items()}


# ---------------------------------------------------------------- the load generator


def stamped_text(now: float) -> str:
    """A ``TEXT_BYTES`` text starting with its send time (the receiver's latency source)."""
    head = f"{now:.6f}|"
    return head + "x" * (TEXT_BYTES - len(head))


@dataclass
class Tally:
    """What one load run counts; deliveries count only while ``measuring``."""

    measuring: bool = False
    delivered: int = 0
    acked: int = 0
    acked_total: int = 0
    sent: int = 0
    refused: int = 0
    error_count: int = 0
    #: Send to the moment the admin's frame was read from its socket.
    latencies: list[float] = field(default_factory=list)
    #: Send to ``chat:ack`` (kervan) or Socket.IO ack, per acknowledged message.
    ack_latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def deliver(self, text: str, read_at: float) -> None:
        if self.measuring:
            sent_at = float(text.partition("|")[0])
            self.latencies.append(read_at - sent_at)
            self.delivered += 1

    def ack(self, sent_at: float | None, read_at: float) -> None:
        self.acked_total += 1
        if self.measuring:
            self.acked += 1
            if sent_at is not None:
                self.ack_latencies.append(read_at - sent_at)

    def error(self, what: str) -> None:
        self.error_count += 1
        if len(self.errors) < 20:
            self.errors.append(what[:300])

    def refuse(self, what: str) -> None:
        """A ``chat:send`` answered with an error instead of an ack: its slot is free again."""
        if self.measuring:
            self.refused += 1
        self.error(what)


@dataclass(eq=False)
class Peer:
    """One client connection of the load generator (customer or admin)."""

    socket: Any
    role: str
    room: str | None = None
    inflight: int = 0
    seq: int = 0
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    #: Full load with the lean client: sends the next message when a slot frees (instead of
    #: waking the customer's sender task).
    on_free: Callable[[], None] | None = None
    in_room: asyncio.Event = field(default_factory=asyncio.Event)
    reader: asyncio.Task[None] | None = None
    #: kervan admins: the desk's last ``presence`` figure of free admins.
    available: int = -1
    #: Send time by sequence number (the client id's or the Socket.IO ack id's), until acked.
    sent_at: dict[int, float] = field(default_factory=dict)

    def freed(self) -> None:
        """An acknowledgement (or a refusal) freed one of the window's slots."""
        self.inflight -= 1
        if self.on_free is not None:
            self.on_free()
        else:
            self.wake.set()


#: The load generator's WebSocket client: ``lean`` (``bench/wsclient.py``) or ``websockets``
#: (the library's asyncio client, which the benches used before: it costs the client about
#: twice the CPU per message). ``--client`` sets it.
CLIENT = "lean"


async def open_socket(url: str) -> Any:
    from websockets.asyncio.client import connect

    from bench import wsclient

    # No compression and no library pings: both protocols carry their own heartbeat, and
    # permessage-deflate would make the client, not the servers, the cost measured.
    for attempt in range(5):
        try:
            if CLIENT == "lean":
                return await wsclient.connect(url, open_timeout=30)
            return await connect(
                url,
                compression=None,
                ping_interval=None,
                open_timeout=30,
                max_size=1 << 20,
                max_queue=64,
            )
        except OSError:
            if attempt == 4:
                raise
            await asyncio.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


async def bounded(
    count: int, make: Callable[[int], Awaitable[Peer]], limit: int = CONNECT_CONCURRENCY
) -> list[Peer]:
    gate = asyncio.Semaphore(limit)

    async def one(index: int) -> Peer:
        async with gate:
            return await make(index)

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def close_all(peers: list[Peer]) -> None:
    for peer in peers:
        if peer.reader is not None:
            peer.reader.cancel()
        if CLIENT == "lean":  # a close by the load's end is no error
            peer.socket.hand_over(None)

    async def close(peer: Peer) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(peer.socket.close(), 5)

    gate = asyncio.Semaphore(100)

    async def limited(peer: Peer) -> None:
        async with gate:
            await close(peer)

    await asyncio.gather(*(limited(p) for p in peers))
    for peer in peers:
        if peer.reader is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await peer.reader


def _kervan_ack_seq(raw: bytes) -> int:
    """The sequence number in a ``chat:ack``'s client id (``"client_id":"m<seq>"``)."""
    start = raw.find(b'"client_id":"m') + 14
    return int(raw[start : raw.index(b'"', start)]) if start >= 14 else -1


def _socketio_ack_seq(raw: bytes) -> int:
    """The ack id of a Socket.IO ack packet (``43<id>[...]``), which the bench sets to the
    message's sequence number."""
    end = raw.find(b"[")
    return int(raw[2:end]) if end > 2 else -1


class Protocol:
    """What differs between the two servers: the frames; the load itself is shared."""

    name = ""

    def __init__(self, tally: Tally) -> None:
        self.tally = tally
        self._replies: set[asyncio.Task[None]] = set()

    async def idle(self, port: int, index: int) -> Peer:
        raise NotImplementedError

    async def pairs(self, customer_port: int, admin_port: int, count: int) -> list[Peer]:
        """``count`` connected pairs, customers first; every peer knows its room."""
        raise NotImplementedError

    def chat(self, peer: Peer, text: str) -> bytes:
        raise NotImplementedError

    def on_frame(self, peer: Peer, raw: bytes, read_at: float) -> None:
        """One frame the server sent to ``peer``, read from its socket at ``read_at``."""
        raise NotImplementedError

    def follow(self, peer: Peer) -> None:
        """From now on ``on_frame`` takes the peer's frames: in the lean client's read callback
        (no task woken per frame), or from a reader task (the ``websockets`` client)."""
        socket, tally = peer.socket, self.tally
        if CLIENT != "lean":
            peer.reader = asyncio.create_task(self._pump(peer))
            return

        def frame(raw: bytes, read_at: float) -> None:
            try:
                self.on_frame(peer, raw, read_at)
            except Exception as exc:
                tally.error(f"{peer.role} reader: {exc!r}")

        def closed(exc: Exception) -> None:
            tally.error(f"{peer.role} reader: {exc!r}")

        socket.hand_over(frame, closed)

    async def _pump(self, peer: Peer) -> None:
        try:
            while True:
                raw = await peer.socket.recv(decode=False)
                self.on_frame(peer, raw, time.perf_counter())
        except Exception as exc:
            self.tally.error(f"{peer.role} reader: {exc!r}")

    def reply(self, peer: Peer, frame: bytes) -> None:
        """A frame sent from ``on_frame`` (a heartbeat's answer)."""
        if CLIENT == "lean":
            peer.socket.send_nowait(frame, text=True)
        else:
            task = asyncio.create_task(peer.socket.send(frame, text=True))
            self._replies.add(task)
            task.add_done_callback(self._replies.discard)

    def progress(self, what: str, since: float) -> None:
        print(f"    {self.name}: {what} after {time.monotonic() - since:.1f}s", flush=True)


class KervanProtocol(Protocol):
    name = "kervan"
    PONG = b'{"type":"pong"}'
    PING = b'{"type":"ping"}'
    ACK = b'{"type":"chat:ack"'
    MESSAGE = b'{"type":"chat:message"'

    def __init__(self, tally: Tally, tokens: list[str]) -> None:
        super().__init__(tally)
        self.tokens = tokens
        #: ``hello`` frames answered ``support_unavailable`` and sent again.
        self.retries = 0

    @staticmethod
    def url(port: int) -> str:
        return f"ws://127.0.0.1:{port}/ws/support"

    async def _hello(self, port: int, hello: dict[str, Any], role: str) -> Peer:
        for attempt in range(HELLO_ATTEMPTS):
            socket = await open_socket(self.url(port))
            await socket.send(orjson.dumps(hello), text=True)
            while True:
                raw = await asyncio.wait_for(socket.recv(decode=False), 60)
                data = orjson.loads(raw)
                if data["type"] == "welcome":
                    return Peer(socket, role)
                if data["type"] == "error":
                    break
            await socket.close()
            if data["code"] != "support_unavailable" or attempt == HELLO_ATTEMPTS - 1:
                raise RuntimeError(f"kervan refused hello: {data}")
            # Redis calls timed out in the server (see KERVAN_SETUP_CONCURRENCY): again.
            self.retries += 1
            await asyncio.sleep(1.0 + attempt)
        raise AssertionError("unreachable")

    async def idle(self, port: int, index: int) -> Peer:
        hello = {"type": "hello", "role": "customer", "name": f"Idle {index}", "language": "en"}
        peer = await self._hello(port, hello, "customer")
        self.follow(peer)
        return peer

    def on_frame(self, peer: Peer, raw: bytes, read_at: float) -> None:
        if raw.startswith(self.ACK):
            peer.freed()
            self.tally.ack(peer.sent_at.pop(_kervan_ack_seq(raw), None), read_at)
        elif raw.startswith(self.MESSAGE):
            if peer.role == "admin":
                self.tally.deliver(orjson.loads(raw)["text"], read_at)
        elif raw == self.PING:
            self.reply(peer, self.PONG)
        else:
            self._control(peer, orjson.loads(raw))

    def _control(self, peer: Peer, data: dict[str, Any]) -> None:
        kind = data["type"]
        if kind == "room:joined":
            peer.room = data["room"]
            peer.in_room.set()
        elif kind == "presence":
            peer.available = data["available"]
        elif kind == "error" and peer.role == "customer" and peer.in_room.is_set():
            # The only frame a chatting customer sends is chat:send.
            peer.freed()
            self.tally.refuse(f"chat:send refused: {data['code']}: {data['message']}")
        elif kind in ("error", "queue:refused", "room:closed"):
            self.tally.error(f"{peer.role}: {data}")

    async def pairs(self, customer_port: int, admin_port: int, count: int) -> list[Peer]:
        if len(self.tokens) < count:
            raise ValueError("one admin session per pair")

        async def admin(index: int) -> Peer:
            hello = {"type": "hello", "role": "admin", "token": self.tokens[index]}
            peer = await self._hello(admin_port, hello, "admin")
            self.follow(peer)
            return peer

        started = time.monotonic()
        admins = await bounded(count, admin, KERVAN_SETUP_CONCURRENCY)
        self.progress(f"{count} admins connected", started)
        # Customers join once every admin is free, so each is served at once (a waiting line
        # of 500 would pass the queue's capacity).
        deadline = time.monotonic() + SETUP_TIMEOUT / 2
        while max(a.available for a in admins) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        self.progress(f"{max(a.available for a in admins)} admins free", started)

        async def customer(index: int) -> Peer:
            hello = {
                "type": "hello",
                "role": "customer",
                "name": f"Kunde {index}",
                "language": "de",
            }
            peer = await self._hello(customer_port, hello, "customer")
            self.follow(peer)
            await peer.socket.send(b'{"type":"queue:join"}', text=True)
            await asyncio.wait_for(peer.in_room.wait(), SETUP_TIMEOUT)
            return peer

        customers = await bounded(count, customer, KERVAN_SETUP_CONCURRENCY)
        self.progress(f"{count} customers in their rooms", started)
        await asyncio.wait_for(asyncio.gather(*(a.in_room.wait() for a in admins)), SETUP_TIMEOUT)
        self.progress(f"{count} admins in their rooms", started)
        return customers + admins

    def chat(self, peer: Peer, text: str) -> bytes:
        peer.seq += 1
        return orjson.dumps(
            {"type": "chat:send", "room": peer.room, "client_id": f"m{peer.seq}", "text": text}
        )


class SocketIOProtocol(Protocol):
    name = "socket.io"
    PING = b"2"
    PONG = b"3"

    @staticmethod
    def url(port: int) -> str:
        return f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket"

    async def _connect(self, port: int, role: str) -> Peer:
        socket = await open_socket(self.url(port))
        opened = await asyncio.wait_for(socket.recv(decode=False), 30)
        if not opened.startswith(b"0{"):
            raise RuntimeError(f"no Engine.IO open packet: {opened[:100]!r}")
        await socket.send(b"40", text=True)
        while True:
            raw = await asyncio.wait_for(socket.recv(decode=False), 30)
            if raw.startswith(b"40"):
                return Peer(socket, role)
            if raw == self.PING:
                await socket.send(self.PONG, text=True)
            elif raw.startswith(b"44"):
                raise RuntimeError(f"socket.io refused the connection: {raw[:200]!r}")

    async def idle(self, port: int, index: int) -> Peer:
        peer = await self._connect(port, "customer")
        self.follow(peer)
        return peer

    async def _join(self, port: int, room: str, role: str) -> Peer:
        peer = await self._connect(port, role)
        await peer.socket.send(b"420" + orjson.dumps(["join", {"room": room}]), text=True)
        while True:
            raw = await asyncio.wait_for(peer.socket.recv(decode=False), 30)
            if raw.startswith(b"430"):
                break
            if raw == self.PING:
                await peer.socket.send(self.PONG, text=True)
        peer.room = room
        peer.in_room.set()
        self.follow(peer)
        return peer

    async def pairs(self, customer_port: int, admin_port: int, count: int) -> list[Peer]:
        async def admin(index: int) -> Peer:
            return await self._join(admin_port, f"room-{index}", "admin")

        async def customer(index: int) -> Peer:
            return await self._join(customer_port, f"room-{index}", "customer")

        admins = await bounded(count, admin)
        customers = await bounded(count, customer)
        return customers + admins

    def on_frame(self, peer: Peer, raw: bytes, read_at: float) -> None:
        tally = self.tally
        if raw.startswith(b"43"):
            peer.freed()
            sent_at = peer.sent_at.pop(_socketio_ack_seq(raw), None)
            if b'"error"' in raw:
                tally.refuse(f"chat refused: {raw[:200]!r}")
            else:
                tally.ack(sent_at, read_at)
        elif raw.startswith(b"42"):
            if peer.role == "admin":
                _event, data = orjson.loads(raw[2:])
                tally.deliver(data["text"], read_at)
        elif raw == self.PING:
            self.reply(peer, self.PONG)
        elif raw.startswith((b"41", b"44", b"1")):
            tally.error(f"{peer.role}: closed by the server: {raw[:200]!r}")

    def chat(self, peer: Peer, text: str) -> bytes:
        peer.seq += 1
        body = orjson.dumps(
            ["chat", {"room": peer.room, "client_id": f"m{peer.seq}", "text": text}]
        )
        return b"42%d%s" % (peer.seq, body)


class BareProtocol(Protocol):
    """``bench/baselines/bare_websocket.py``: connections that only stay open (the floor)."""

    name = "bare ws"

    async def idle(self, port: int, index: int) -> Peer:
        return Peer(await open_socket(f"ws://127.0.0.1:{port}/ws"), "customer")


async def drive(
    protocol: Protocol,
    customers: list[Peer],
    *,
    window: int,
    rate: float | None,
    warmup: float,
    seconds: float,
    pids: list[int],
    redis_url: str,
    database_pids: list[int] | None = None,
) -> dict[str, Any]:
    """Every customer sends until the window closes; the figures of the measured part.
    ``database_pids``: the machine's database server, whose CPU is measured beside Redis's
    (for every server compared: one that does not use it shows its background)."""
    tally = protocol.tally
    tally.measuring = False
    tally.delivered = tally.acked = tally.sent = tally.refused = tally.error_count = 0
    tally.latencies = []
    tally.ack_latencies = []
    tally.errors = []
    interval = len(customers) / rate if rate else 0.0
    start = time.perf_counter() + 0.05

    def send_now(peer: Peer) -> None:
        # Full load, lean client: from the ack's read callback (a window holds a few frames
        # at most, so nothing waits for the socket to drain).
        while peer.inflight < window:
            peer.inflight += 1
            now = time.perf_counter()
            frame = protocol.chat(peer, stamped_text(now))
            peer.sent_at[peer.seq] = now
            peer.socket.send_nowait(frame, text=True)
            if tally.measuring:
                tally.sent += 1

    async def sender(index: int, peer: Peer) -> None:
        # Offered-rate mode: each customer's sends are evenly spaced and the customers are
        # staggered, so the total arrives as a steady stream, not in bursts.
        next_at = start + (interval * index / len(customers) if interval else 0.0)
        socket = peer.socket
        while True:
            if peer.inflight >= window:
                peer.wake.clear()
                await peer.wake.wait()
                continue
            if interval:
                delay = next_at - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                next_at += interval
            peer.inflight += 1
            now = time.perf_counter()
            frame = protocol.chat(peer, stamped_text(now))
            peer.sent_at[peer.seq] = now
            await socket.send(frame, text=True)
            if tally.measuring:
                tally.sent += 1

    for peer in customers:
        peer.inflight = 0
        peer.sent_at.clear()
    # The load generator's own full collections (113 ms once, timed with gc.callbacks) would
    # stall every connection at once and count as the server's latency: what the set-up made
    # is out of the collector's view, and while a load runs the collector is as a server's
    # (service/gc_policy.py: young collections rarer, no full ones).
    gc.collect()
    gc.freeze()
    thresholds = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, thresholds[1], NO_AUTOMATIC_FULL)
    tasks: list[asyncio.Task[None]] = []
    if interval or CLIENT != "lean":
        tasks = [asyncio.create_task(sender(i, p)) for i, p in enumerate(customers)]
    else:
        for peer in customers:
            peer.on_free = functools.partial(send_now, peer)
            send_now(peer)
    try:
        await asyncio.sleep(warmup)
        cpu = [tree_cpu_seconds(pid) for pid in pids]
        redis_cpu = await redis_cpu_seconds(redis_url)
        db_cpu = processes_cpu_seconds(database_pids or [])
        calls = await redis_command_calls(redis_url)
        client_cpu = own_cpu_seconds()
        started = time.perf_counter()
        tally.measuring = True
        await asyncio.sleep(seconds)
        tally.measuring = False
        elapsed = time.perf_counter() - started
        client_cpu = own_cpu_seconds() - client_cpu
        redis_cpu = await redis_cpu_seconds(redis_url) - redis_cpu
        db_cpu = processes_cpu_seconds(database_pids or []) - db_cpu
        after = await redis_command_calls(redis_url)
        calls = {name: n - calls.get(name, 0) for name, n in after.items()}
        cpu = [tree_cpu_seconds(pid) - before for pid, before in zip(pids, cpu, strict=True)]
    finally:
        for peer in customers:
            peer.on_free = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        gc.set_threshold(*thresholds)
        gc.unfreeze()
    # What is still on its way lands before the next run starts.
    await asyncio.sleep(1.5)
    latencies = sorted(tally.latencies)
    ack_latencies = sorted(tally.ack_latencies)

    def pct(p: float, values: list[float] = latencies) -> float | None:
        if not values:
            return None
        return values[min(len(values) - 1, int(p / 100 * len(values)))] * 1000

    delivered = tally.delivered
    per_k = 1000 / delivered if delivered else float("nan")
    return {
        "offered_per_second": rate,
        "window": window,
        "seconds": elapsed,
        "sent": tally.sent,
        "acked": tally.acked,
        "refused": tally.refused,
        "delivered": delivered,
        "delivered_per_second": delivered / elapsed,
        "p50_ms": pct(50),
        "p90_ms": pct(90),
        "p99_ms": pct(99),
        "max_ms": latencies[-1] * 1000 if latencies else None,
        "ack_p50_ms": pct(50, ack_latencies),
        "ack_p99_ms": pct(99, ack_latencies),
        "server_cpu_seconds": cpu,
        "server_cpu_ms_per_1k": sum(cpu) * 1000 * per_k,
        "redis_cpu_ms_per_1k": redis_cpu * 1000 * per_k,
        "db_cpu_ms_per_1k": db_cpu * 1000 * per_k if database_pids else None,
        # What a message costs the machine's servers: the server's processes (with kervan's
        # worker), Redis and the database (the load generator's CPU is apart).
        "total_cpu_ms_per_1k": (sum(cpu) + redis_cpu + (db_cpu if database_pids else 0.0))
        * 1000
        * per_k,
        # The whole Redis server's count: another client of the machine's Redis adds to it.
        "redis_calls_per_message": {
            name: n / delivered
            for name, n in sorted(calls.items(), key=lambda item: -item[1])
            if delivered and n / delivered >= 0.01
        },
        "client_cpu_share": client_cpu / elapsed,
        "errors": list(tally.errors),
        "error_count": tally.error_count,
    }


# ---------------------------------------------------------------- kervan: database and admins


def mariadb_database(base_url: str) -> tuple[str, Callable[[], None]]:
    import pymysql  # type: ignore[import-untyped]
    from sqlalchemy.engine import make_url

    url = make_url(base_url)
    name = f"kervan_bench_sup_{RUN}"
    params = {
        "host": url.host or "127.0.0.1",
        "port": url.port or 3306,
        "user": url.username or "root",
        "password": url.password or "",
    }
    conn = pymysql.connect(**params)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    conn.close()

    def drop() -> None:
        conn = pymysql.connect(**params)
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()

    return url.set(database=name).render_as_string(hide_password=False), drop


async def prepare_database(database_url: str, admins: int) -> list[tuple[int, str]]:
    """Migrate, and add ``admins`` accounts: (id, name) each."""
    from service.admins.accounts import add_admin
    from service.db import Database
    from service.db.migrate import migrate
    from service.db.types import utcnow

    db = Database(database_url)
    try:
        await migrate(db)
        made = []
        for n in range(admins):
            admin = await add_admin(
                db,
                name=f"bench-admin-{n:04d}",
                telegram_chat_id=str(100000 + n),
                language="tr",
                now=utcnow(),
                actor="bench",
            )
            made.append((admin.id, admin.name))
        return made
    finally:
        await db.dispose()


async def admin_sessions(
    redis_url: str, namespace: str, admins: list[tuple[int, str]]
) -> list[str]:
    """A session token per admin in ``namespace``, as ``AdminAuth`` makes them at login."""
    from core.clock import SystemClock
    from service.admins.sessions import SessionStore
    from service.admins.settings import AdminSettings
    from service.backends import redis_backends

    defaults = AdminSettings()
    backends = redis_backends(redis_url, namespace)
    store = SessionStore(
        backends,
        SystemClock(),
        kind="admin",
        idle_ttl=defaults.admin_session_ttl_seconds,
        max_age=defaults.admin_session_max_age_seconds,
        refresh_interval=defaults.admin_session_refresh_seconds,
    )
    try:
        tokens = []
        for admin_id, name in admins:
            made = await store.create(admin_id, name, ip="127.0.0.1", user_agent="bench")
            tokens.append(made.token)
        return tokens
    finally:
        await backends.close()


async def history_rows(database_url: str) -> int:
    """Chat messages the desks have written to the CRM (``provider_id`` ``web:...``)."""
    from sqlalchemy import func, select

    from service.db import Database
    from service.db.tables.crm import crm_messages

    db = Database(database_url)
    try:
        async with db.connect() as conn:
            count = await conn.scalar(
                select(func.count()).where(crm_messages.c.provider_id.like("web:%"))
            )
        return int(count or 0)
    finally:
        await db.dispose()


async def drop_namespace(redis_url: str, namespace: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(redis_url)
    try:
        keys = [k async for k in client.scan_iter(match=f"{namespace}:*", count=1000)]
        for start in range(0, len(keys), 1000):
            await client.delete(*keys[start : start + 1000])
    finally:
        await client.aclose()


# ---------------------------------------------------------------- servers


@asynccontextmanager
async def reaped(server: Any) -> AsyncIterator[Any]:
    """``server`` (a ``process_server`` context, which starts its own session), and then
    whatever of its process group outlived it: a granian worker still busy when its parent is
    killed after the grace period keeps running otherwise."""
    pid: int | None = None
    try:
        async with server as process:
            pid = process.pid
            yield process
    finally:
        if pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


@asynccontextmanager
async def kervan_processes(
    count: int, workdir: Path, *, database_url: str, redis_url: str, namespace: str
) -> AsyncIterator[tuple[list[tuple[int, int]], int]]:
    """``count`` ``kervan serve`` processes in scaled mode, (port, pid) each, and the pid of
    one ``kervan worker`` beside them (it writes the chat history)."""
    async with AsyncExitStack() as stack:
        servers = []
        env: dict[str, str] = {}
        for n in range(count):
            port = free_port()
            here = workdir / f"kervan-{n}"
            here.mkdir(parents=True, exist_ok=True)
            env = kervan_server_env(
                port,
                here,
                database_url=database_url,
                admin_key=ADMIN_KEY,
                root=ROOT,
                extra_env={"KERVAN_PUBLIC_ORIGIN": ORIGIN, "KERVAN_REDIS_NAMESPACE": namespace},
            )
            # kervan_server_env keeps the embedded backends; this bench is the scaled mode.
            env["KERVAN_REDIS_URL"] = redis_url
            server = await stack.enter_async_context(
                reaped(
                    process_server(
                        [sys.executable, "-m", "service.cli", "serve"],
                        port,
                        cwd=here,
                        log_path=here / "server.log",
                        env=env,
                    )
                )
            )
            servers.append((port, server.pid))
        worker_dir = workdir / "worker"
        worker_dir.mkdir(parents=True, exist_ok=True)
        with open(worker_dir / "server.log", "ab") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "service.cli", "worker"],
                cwd=worker_dir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                yield servers, worker.pid
            finally:
                stop_process(worker, 20)


@asynccontextmanager
async def socketio_processes(
    count: int, workdir: Path, *, redis_url: str, channel: str, pool: int
) -> AsyncIterator[list[tuple[int, int]]]:
    async with AsyncExitStack() as stack:
        servers = []
        for n in range(count):
            port = free_port()
            env = {
                **os.environ,
                "PYTHONPATH": str(ROOT),
                "SOCKETIO_REDIS_URL": redis_url,
                "SOCKETIO_CHANNEL": channel,
                "SOCKETIO_REDIS_POOL": str(pool),
            }
            server = await stack.enter_async_context(
                granian_process(
                    "bench.baselines.socketio_server:app", port, workdir / f"socketio-{n}.log", env
                )
            )
            servers.append((port, server.pid))
        yield servers


def granian_process(
    target: str, port: int, log_path: Path, env: dict[str, str] | None = None
) -> Any:
    argv = [sys.executable, "-m", "granian", *GRANIAN_FLAGS, "--host", "127.0.0.1"]
    argv += ["--port", str(port), target]
    env = env or {**os.environ, "PYTHONPATH": str(ROOT)}
    return reaped(process_server(argv, port, cwd=ROOT, log_path=log_path, env=env))


# ---------------------------------------------------------------- cases


async def idle_memory(protocol: Protocol, port: int, pid: int, count: int) -> dict[str, Any]:
    """RSS of the server's process tree before and after ``count`` idle connections."""
    warm = await bounded(50, lambda i: protocol.idle(port, 10_000 + i))
    await close_all(warm)
    await asyncio.sleep(1.0)
    before = tree_rss_bytes(pid)
    peers = await bounded(count, lambda i: protocol.idle(port, i))
    await asyncio.sleep(2.0)
    after = tree_rss_bytes(pid)
    await close_all(peers)
    await asyncio.sleep(1.0)
    return {
        "connections": count,
        "rss_before_mb": before / 2**20,
        "rss_after_mb": after / 2**20,
        "bytes_per_connection": (after - before) / count,
    }


async def settle(pids: list[int], *, limit: float = 120.0) -> tuple[float, float]:
    """Wait until the servers' work from the set-up is done (a second using under 15% of a
    core per process, or ``limit``); the seconds waited and that last second's CPU share."""
    started = time.monotonic()
    while True:
        before = sum(tree_cpu_seconds(pid) for pid in pids)
        await asyncio.sleep(1.0)
        used = sum(tree_cpu_seconds(pid) for pid in pids) - before
        if used < 0.15 * len(pids) or time.monotonic() - started > limit:
            return time.monotonic() - started - 1.0, used


async def run_case(
    protocol: Protocol,
    servers: list[tuple[int, int]],
    args: argparse.Namespace,
    *,
    label: str,
    trial: int = 1,
    history: Callable[[], Awaitable[int]] | None = None,
    helpers: list[int] | None = None,
) -> dict[str, Any]:
    """Idle memory (one process), the pairs' set-up, then the offered rate and the full load,
    in that order: a full load leaves kervan's history writer behind, which would load the
    next run."""
    ports = [port for port, _ in servers]
    #: Every process of the server side, for its CPU and memory (a helper serves no port).
    pids = [pid for _, pid in servers] + (helpers or [])
    database_pids = local_database_pids(args.mariadb_url)
    result: dict[str, Any] = {
        "server": protocol.name,
        "case": label,
        "trial": trial,
        "processes": len(servers),
    }
    # Idle memory once per server (the first trial): it does not depend on the machine's load.
    if len(servers) == 1 and args.idle and trial == 1:
        result["idle"] = await idle_memory(protocol, ports[0], pids[0], args.idle)
        print(
            f"  {protocol.name:<10} idle: {result['idle']['bytes_per_connection'] / 1024:,.1f}"
            f" KiB per connection ({args.idle} connections)",
            flush=True,
        )
    started = time.monotonic()
    peers = await protocol.pairs(ports[0], ports[-1], args.pairs)
    result["setup_seconds"] = time.monotonic() - started
    result["hello_retries"] = getattr(protocol, "retries", 0)
    result["settle_seconds"], result["idle_cpu_share"] = await settle(pids)
    result["rss_loaded_mb"] = sum(tree_rss_bytes(pid) for pid in pids) / 2**20
    print(
        f"  {protocol.name:<10} {label}: {args.pairs} pairs connected in "
        f"{result['setup_seconds']:.1f}s, quiet {result['settle_seconds']:.1f}s later "
        f"(then {result['idle_cpu_share']:.0%} CPU with every client idle)",
        flush=True,
    )
    customers = [p for p in peers if p.role == "customer"]
    try:
        loads: dict[str, Any] = {}
        for load, rate in (("rate", args.rate), ("max", None)):
            rows = await history() if history is not None else 0
            acked = protocol.tally.acked_total
            loads[load] = await drive(
                protocol,
                customers,
                window=args.window,
                rate=rate,
                warmup=args.warmup,
                seconds=args.seconds,
                pids=pids,
                redis_url=args.redis_url,
                database_pids=database_pids,
            )
            r = loads[load]
            if history is not None:
                # The history is written behind the stream: how far behind it is a moment
                # after the load stopped.
                acked = protocol.tally.acked_total - acked
                rows = await history() - rows
                r["history"] = {"acked": acked, "rows_written": rows, "behind": acked - rows}
            print(
                f"  {protocol.name:<10} {label} {load:<4}: {r['delivered_per_second']:>9,.0f} msg/s"
                f"  p50 {r['p50_ms']:.1f} ms  p99 {r['p99_ms']:.1f} ms"
                f"  (ack p50 {fmt(r['ack_p50_ms'], '.1f')} p99 {fmt(r['ack_p99_ms'], '.1f')})"
                f"  server CPU {r['server_cpu_ms_per_1k']:.0f} ms/1k"
                f"  client CPU {r['client_cpu_share']:.0%}"
                + (f"  refused {r['refused']}" if r["refused"] else "")
                + (f"  errors {r['error_count']}" if r["error_count"] else "")
                + (f"  history {r['history']['behind']:,} behind" if "history" in r else ""),
                flush=True,
            )
            if load == "rate":
                await settle(pids)
        result["loads"] = loads
    finally:
        await close_all(peers)
    return result


async def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    load_avg_start = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="kervan-support-bench-"))
    results: list[dict[str, Any]] = []
    drop_db: Callable[[], None] = lambda: None  # noqa: E731
    namespaces: list[str] = []
    try:
        database_url = ""
        admins: list[tuple[int, str]] = []
        if "kervan" in args.servers:
            database_url, drop_db = mariadb_database(args.mariadb_url)
            admins = await prepare_database(database_url, args.pairs)
            print(f"MariaDB {database_url.rpartition('/')[2]}: {len(admins)} admins", flush=True)
        floor: dict[str, Any] | None = None
        if "one" in args.cases and args.idle:
            port = free_port()
            async with granian_process(
                "bench.baselines.bare_websocket:app", port, tmp / "bare.log"
            ) as bare:
                floor = await idle_memory(BareProtocol(Tally()), port, bare.pid, args.idle)
            print(
                f"  {'bare ws':<10} idle: {floor['bytes_per_connection'] / 1024:,.1f} KiB per "
                f"connection ({args.idle} connections)",
                flush=True,
            )
        for case in args.cases:
            count = 1 if case == "one" else 2
            label = "1 process" if count == 1 else "2 processes"
            for trial, server in trial_order(args.servers, args.trials):
                if server == "kervan":
                    namespace = f"bench-sup-{RUN}-{case}-{trial}"
                    namespaces.append(namespace)
                    tokens = await admin_sessions(args.redis_url, namespace, admins)
                    async with kervan_processes(
                        count,
                        tmp / f"{case}-{trial}",
                        database_url=database_url,
                        redis_url=args.redis_url,
                        namespace=namespace,
                    ) as (servers, worker):
                        result = await run_case(
                            KervanProtocol(Tally(), tokens),
                            servers,
                            args,
                            label=label,
                            trial=trial,
                            history=functools.partial(history_rows, database_url),
                            helpers=[worker],
                        )
                else:
                    stock = server == "socketio-stock"
                    channel = f"bench-sio-{RUN}-{case}-{trial}-{'stock' if stock else 'pool'}"
                    async with socketio_processes(
                        count,
                        tmp,
                        redis_url=args.socketio_redis_url,
                        channel=channel,
                        pool=0 if stock else args.socketio_pool,
                    ) as servers:
                        protocol = SocketIOProtocol(Tally())
                        if stock:
                            protocol.name = "sio stock"
                        result = await run_case(protocol, servers, args, label=label, trial=trial)
                results.append(result)
    except BaseException:
        show_logs(tmp)
        raise
    finally:
        for namespace in namespaces:
            with contextlib.suppress(Exception):
                await drop_namespace(args.redis_url, namespace)
        drop_db()
        shutil.rmtree(tmp, ignore_errors=True)
    return summarise(args, results, floor, load_avg_start, started)


def show_logs(workdir: Path) -> None:
    """The servers' last log lines, when a case failed."""
    for log in sorted(workdir.rglob("*.log")):
        lines = log.read_text(errors="replace").splitlines()[-30:]
        if lines:
            sys.stderr.write(f"--- {log.relative_to(workdir)}\n" + "\n".join(lines) + "\n")


def trial_order(servers: list[str], trials: int) -> list[tuple[int, str]]:
    """(trial, server) in run order: the compared servers take turns, first in one trial and
    last in the next, so a machine that slows down for a minute or two weighs on both; the
    stock socket.io client, a reference outside the goal, runs in the first trial only."""
    compared = [s for s in servers if s != "socketio-stock"]
    order: list[tuple[int, str]] = []
    for trial in range(1, trials + 1):
        order += [(trial, s) for s in (compared if trial % 2 else compared[::-1])]
        if trial == 1 and "socketio-stock" in servers:
            order.append((1, "socketio-stock"))
    return order


# ---------------------------------------------------------------- summary


def summarise(
    args: argparse.Namespace,
    results: list[dict[str, Any]],
    floor: dict[str, Any] | None,
    load_avg_start: float,
    started: float,
) -> dict[str, Any]:
    from importlib.metadata import version

    def find(server: str, case: str, trial: int) -> dict[str, Any] | None:
        for r in results:
            if r["server"] == server and r["case"] == case and r["trial"] == trial:
                return r
        return None

    ratios = []
    for case, trial in ((c, t) for c in ("1 process", "2 processes") for t in trials_of(results)):
        k, s = find("kervan", case, trial), find("socket.io", case, trial)
        if k is None or s is None:
            continue
        stock = find("sio stock", case, 1)
        for load in ("max", "rate"):
            a, b = k["loads"][load], s["loads"][load]
            ratio = a["delivered_per_second"] / b["delivered_per_second"]
            ratios.append(
                {
                    "case": case,
                    "load": load,
                    "trial": trial,
                    "throughput_ratio": ratio,
                    "throughput_ratio_to_stock": a["delivered_per_second"]
                    / stock["loads"][load]["delivered_per_second"]
                    if stock is not None and trial == 1
                    else None,
                    "kervan_p99_ms": a["p99_ms"],
                    "socketio_p99_ms": b["p99_ms"],
                    "cpu_ratio": b["server_cpu_ms_per_1k"] / a["server_cpu_ms_per_1k"],
                    "total_cpu_ratio": b["total_cpu_ms_per_1k"] / a["total_cpu_ms_per_1k"],
                    # The goal is judged at full load: offered-rate throughput is the rate.
                    "goal_met": (ratio >= 3.0 and a["p99_ms"] < b["p99_ms"])
                    if load == "max"
                    else None,
                }
            )
    idle = {
        r["server"]: r["idle"]["bytes_per_connection"]
        for r in results
        if "idle" in r and r["case"] == "1 process"
    }
    if floor is not None:
        idle["bare ws"] = floor["bytes_per_connection"]
    return {
        "bench": "support",
        "setup": {
            "pairs": args.pairs,
            "connections": 2 * args.pairs,
            "text_bytes": TEXT_BYTES,
            "window": args.window,
            "offered_rate": args.rate,
            "warmup_seconds": args.warmup,
            "seconds": args.seconds,
            "idle_connections": args.idle,
            "servers": "granian 1 worker per process, uvloop, 1 runtime thread, loopback",
            "kervan": "kervan serve, scaled mode: KERVAN_REDIS_URL (own namespace), MariaDB "
            "(throw-away database; one `kervan worker` beside the servers writes the chat history "
            "there behind the stream, its CPU counted with theirs), "
            f"log level WARNING; {args.pairs} admin accounts + sessions made before the run",
            "socketio": "bench/baselines/socketio_server.py: socketio.AsyncServer + "
            f"AsyncRedisManager (own channel) on a blocking pool of {args.socketio_pool} Redis "
            "connections, join/chat events, Socket.IO acks; `sio stock`: the manager's own "
            "Redis client (unbounded pool)",
            "client": "one asyncio process (uvloop), "
            + (
                "bench/wsclient.py (a lean RFC 6455 client: one write per frame sent, one "
                "buffer parsed per read)"
                if CLIENT == "lean"
                else "the `websockets` library's asyncio client"
            )
            + ", no compression; kervan: /ws/support frames; socket.io: Engine.IO v4 / "
            "Socket.IO v5 frames written by hand",
            "two_processes": "every customer on the first process, every admin on the second",
            "latency": "send time in the text (load generator's perf_counter), read where the "
            "admin receives it",
            "cpu": "server: the server processes' own (with kervan's worker); redis: the Redis "
            "server's (INFO cpu); db: the MariaDB server process's when its URL is a loopback one "
            "(measured for both servers, only kervan uses it); total: the three",
        },
        "trials": max(trials_of(results), default=0),
        "cases": results,
        "ratios": ratios,
        "summary": medians(ratios),
        "idle_bytes_per_connection": idle,
        "idle_floor": floor,
        "seconds_total": time.monotonic() - started,
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_1min_start": load_avg_start,
            "load_average_1min_end": os.getloadavg()[0],
            "python": platform.python_version(),
            "granian": version("granian"),
            "python-socketio": version("python-socketio"),
            "python-engineio": version("python-engineio"),
            "websockets": version("websockets"),
            "redis-py": version("redis"),
        },
    }


def trials_of(results: list[dict[str, Any]]) -> list[int]:
    return sorted({r["trial"] for r in results})


def medians(ratios: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per case and load, the median of the trials' figures, and how many trials met the goal.
    The goal is judged on the medians: one trial can meet or miss it with the machine."""
    summary = []
    for case, load in dict.fromkeys((r["case"], r["load"]) for r in ratios):
        rows = [r for r in ratios if r["case"] == case and r["load"] == load]
        row: dict[str, Any] = {"case": case, "load": load, "trials": len(rows)}
        for name in (
            "throughput_ratio",
            "kervan_p99_ms",
            "socketio_p99_ms",
            "cpu_ratio",
            "total_cpu_ratio",
        ):
            row[name] = statistics.median(r[name] for r in rows)

        if load == "max":
            row["goal_met_trials"] = sum(bool(r["goal_met"]) for r in rows)
            row["goal_met"] = (
                row["throughput_ratio"] >= 3.0 and row["kervan_p99_ms"] < row["socketio_p99_ms"]
            )
        else:
            row["goal_met_trials"] = row["goal_met"] = None
        summary.append(row)
    return summary


def fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_report(result: dict[str, Any]) -> None:
    setup = result["setup"]
    print(
        f"\n{setup['connections']} clients = {setup['pairs']} customer/admin pairs, "
        f"{setup['text_bytes']}-byte texts, {setup['seconds']:g}s measured after "
        f"{setup['warmup_seconds']:g}s warm-up; max = window {setup['window']} unacked per "
        f"customer, rate = {setup['offered_rate']:,.0f} msg/s offered in total"
    )
    print(f"kervan: {setup['kervan']}")
    print(f"socket.io: {setup['socketio']}")
    print(f"two processes: {setup['two_processes']}")
    head = (
        f"{'server':<10}{'case':<13}{'trial':<6}{'load':<6}{'msg/s':>9}{'p50 ms':>8}{'p90 ms':>8}"
        f"{'p99 ms':>8}{'max ms':>8}{'ack p50':>8}{'ack p99':>8}{'srv CPU':>9}{'redis':>7}"
        f"{'db':>6}{'client':>8}{'refused':>8}"
    )
    print(
        "\np50-max: delivery latency (send to the other member's frame read from its socket); "
        "ack: send to the sender's ack\nsrv CPU / redis / db: CPU ms per 1,000 delivered messages "
        "(server processes with kervan's worker / Redis / the machine's MariaDB server, which "
        "only kervan uses); client: load generator CPU"
    )
    print(head)
    print("-" * len(head))
    for case in result["cases"]:
        for load, r in case["loads"].items():
            print(
                f"{case['server']:<10}{case['case']:<13}{case['trial']:<6}{load:<6}"
                f"{r['delivered_per_second']:>9,.0f}{fmt(r['p50_ms'], '.1f'):>8}"
                f"{fmt(r['p90_ms'], '.1f'):>8}{fmt(r['p99_ms'], '.1f'):>8}"
                f"{fmt(r['max_ms'], '.0f'):>8}{fmt(r['ack_p50_ms'], '.1f'):>8}"
                f"{fmt(r['ack_p99_ms'], '.1f'):>8}{r['server_cpu_ms_per_1k']:>9.0f}"
                f"{r['redis_cpu_ms_per_1k']:>7.0f}{fmt(r.get('db_cpu_ms_per_1k'), '.0f'):>6}"
                f"{r['client_cpu_share']:>8.0%}"
                f"{r['refused']:>8}"
            )
    print()
    for case in result["cases"]:
        print(
            f"  {case['server']:<10}{case['case']:<13}trial {case['trial']}  "
            f"set-up {case['setup_seconds']:.1f}s "
            f"(+{case['settle_seconds']:.1f}s until quiet, then {case['idle_cpu_share']:.0%} CPU "
            f"idle), RSS with the pairs {case['rss_loaded_mb']:.0f} MB"
        )
        for load, r in case["loads"].items():
            calls = r["redis_calls_per_message"]
            shown = ", ".join(f"{name} {n:.2f}" for name, n in list(calls.items())[:6])
            print(f"    {load}: Redis calls per message: {sum(calls.values()):.2f} ({shown})")
            if "history" in r:
                h = r["history"]
                print(
                    f"    {load}: chat history rows written {h['rows_written']:,} of "
                    f"{h['acked']:,} acked ({h['behind']:,} behind 1.5s after the load)"
                )
            for error in list(dict.fromkeys(r["errors"]))[:3]:
                print(f"    {load} error: {error}")
    idle = result["idle_bytes_per_connection"]
    if idle:
        print("\nmemory per idle connection (server RSS delta / connections):")
        floor = idle.get("bare ws")
        for server, value in idle.items():
            above = (
                f"  ({(value - floor) / 1024:+.1f} KiB over granian's bare WebSocket)"
                if floor is not None and server != "bare ws"
                else ""
            )
            print(f"  {server:<10}{value / 1024:>8.1f} KiB{above}")
    print("\nkervan / socket.io (goal: >= 3x throughput at max load and a lower p99):")
    for r in result["ratios"]:
        verdict = ""
        if r["goal_met"] is not None:
            verdict = "  goal: " + ("met" if r["goal_met"] else "NOT MET")
        print(
            f"  {r['case']:<13}trial {r['trial']:<3}{r['load']:<6}throughput "
            f"{r['throughput_ratio']:>5.2f}x  p99 {fmt(r['kervan_p99_ms'], '.1f')} vs "
            f"{fmt(r['socketio_p99_ms'], '.1f')} ms  CPU/msg ratio {r['cpu_ratio']:.2f} "
            f"(with Redis and the database {r['total_cpu_ratio']:.2f}){verdict}"
        )
        if r["throughput_ratio_to_stock"] is not None:
            print(f"{'':<31}against the stock client: {r['throughput_ratio_to_stock']:.2f}x")
    print("\nmedians of the trials (the goal judged on them; in how many trials it was met):")
    for r in result["summary"]:
        verdict = ""
        if r["goal_met"] is not None:
            verdict = (
                "  goal: "
                + ("met" if r["goal_met"] else "NOT MET")
                + f" (met in {r['goal_met_trials']} of {r['trials']} trials)"
            )
        print(
            f"  {r['case']:<13}{r['load']:<6}throughput {r['throughput_ratio']:>5.2f}x  "
            f"p99 {fmt(r['kervan_p99_ms'], '.1f')} vs {fmt(r['socketio_p99_ms'], '.1f')} ms  "
            f"CPU/msg ratio {r['cpu_ratio']:.2f} "
            f"(with Redis and the database {r['total_cpu_ratio']:.2f}){verdict}"
        )

    print(f"\nrun took {result['seconds_total']:.0f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--pairs", type=int, default=500)
    parser.add_argument("--window", type=int, default=2)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument("--cases", default="one,two", type=lambda s: s.split(","))
    parser.add_argument(
        "--trials",
        type=int,
        default=3,
        help="times each compared server runs each case, taking turns (the goal is judged on "
        "the medians)",
    )
    parser.add_argument(
        "--servers", default="kervan,socketio,socketio-stock", type=lambda s: s.split(",")
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument(
        "--socketio-redis-url",
        default="redis://127.0.0.1:6379/14",
        help="socket.io's Redis (a database index of its own; its channel is per run too)",
    )
    parser.add_argument(
        "--socketio-pool",
        type=int,
        default=50,
        help="socket.io's Redis connections per process (kervan's default pool size); the "
        "`socketio-stock` server keeps the manager's own unbounded client",
    )
    parser.add_argument("--mariadb-url", default="mariadb+aiomysql://root@127.0.0.1:3306/")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/support.json")
    parser.add_argument(
        "--client",
        choices=["lean", "websockets"],
        default="lean",
        help="the load generator's WebSocket client (the same for every server in a run)",
    )
    args = parser.parse_args()
    global CLIENT
    CLIENT = args.client
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    if args.trials < 1:
        parser.error("--trials must be >= 1")
    runs = len(args.cases) * len(trial_order(args.servers, args.trials))
    budget = 600 + runs * (120 + 2 * (args.seconds + args.warmup + 5))
    result = asyncio.run(asyncio.wait_for(run(args), timeout=budget))
    print_report(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
