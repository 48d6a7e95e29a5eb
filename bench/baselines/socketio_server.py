"""The live-support baseline: a python-socketio chat relay with its Redis manager, on granian.

What issue 14 compares ``/ws/support`` against: ``socketio.AsyncServer`` with
``socketio.AsyncRedisManager`` (every emit is published on one Redis channel, so any number of
processes serve the same rooms), served like kervan (granian, one worker, uvloop). The app is
the smallest honest relay: ``join {room}`` puts the connection in a room, ``chat {room,
client_id, text}`` from a member is acknowledged to the sender (a Socket.IO ack) and emitted to
the room's other member. No history, no queue, no resume: python-socketio has none of them.
``GET /health`` answers 200 for the bench's readiness check.

Configured by the environment: ``SOCKETIO_REDIS_URL`` (default ``redis://127.0.0.1:6379/0``),
``SOCKETIO_CHANNEL`` (the pub/sub channel; pub/sub is not scoped by Redis database, so each run
takes a channel of its own) and ``SOCKETIO_REDIS_POOL`` (0, the default: the manager's stock
Redis client; N: a blocking pool of N connections, see ``PooledRedisManager``). Served by
``bench/bench_support.py``::

    SOCKETIO_CHANNEL=bench-sio .venv/bin/granian --interface asgi --loop uvloop --workers 1 \\
        --host 127.0.0.1 --port 8201 bench.baselines.socketio_server:app
"""

from __future__ import annotations

import os
from typing import Any

import socketio  # type: ignore[import-untyped]
from redis.asyncio import BlockingConnectionPool, Redis

REDIS_URL = os.environ.get("SOCKETIO_REDIS_URL", "redis://127.0.0.1:6379/0")
CHANNEL = os.environ.get("SOCKETIO_CHANNEL", "socketio")
#: Redis connections of the process; 0 keeps the manager's own client (redis-py's unbounded
#: pool: every publish in flight opens a connection of its own).
POOL = int(os.environ.get("SOCKETIO_REDIS_POOL", "0"))


class PooledRedisManager(socketio.AsyncRedisManager):  # type: ignore[misc]
    """``AsyncRedisManager`` on a blocking pool of ``POOL`` connections, as kervan's own
    (``KERVAN_REDIS_POOL_SIZE``, 50): with the stock client, 2,000 messages in flight open
    2,000 Redis connections and the relay spends its time opening them."""

    def _redis_connect(self) -> None:
        pool = BlockingConnectionPool.from_url(self.redis_url, max_connections=POOL)
        self.redis = Redis(connection_pool=pool)
        self.pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        self.connected = True


manager = (
    PooledRedisManager(REDIS_URL, channel=CHANNEL)
    if POOL
    else socketio.AsyncRedisManager(REDIS_URL, channel=CHANNEL)
)
sio = socketio.AsyncServer(
    async_mode="asgi",
    client_manager=manager,
    # The load generator is not a browser and sends no Origin; nothing to check.
    cors_allowed_origins=[],
    transports=["websocket"],
)


@sio.on("join")  # type: ignore[untyped-decorator]
async def join(sid: str, data: dict[str, Any]) -> bool:
    await sio.enter_room(sid, data["room"])
    await sio.save_session(sid, {"room": data["room"]})
    return True


@sio.on("chat")  # type: ignore[untyped-decorator]
async def chat(sid: str, data: dict[str, Any]) -> dict[str, Any]:
    room = data["room"]
    # A relay still checks membership, as /ws/support does: no posting into others' rooms.
    # From the session (one lookup): ``sio.rooms(sid)`` walks every room of the server.
    if (await sio.get_session(sid)).get("room") != room:
        return {"error": "not_in_room"}
    await sio.emit("chat", data, to=room, skip_sid=sid)
    return {"client_id": data["client_id"]}


async def _health(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    status = 200 if scope.get("path") == "/health" else 404
    body = b'{"status":"ok"}' if status == 200 else b""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


app = socketio.ASGIApp(sio, other_asgi_app=_health)
