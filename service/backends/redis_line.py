"""One pipelined Redis connection for the hottest commands, without redis-py's per-command work.

A redis-py asyncio call takes a connection from the pool, runs through its retry wrapper, a
health check, two timeout contexts, observability hooks and the pool's release, about five
times the cost of the command's own packing and parsing: in the live-support relay's serving
process the send script's call and the hub's news ``XREAD`` were a quarter of the Python work
at a steady 500 messages/s, most of it that machinery (``bench/bench_support.py``, py-spy).

A ``RedisLine`` is one connection (an ``asyncio.Protocol``): a command is packed by hiredis and
written at once, replies are parsed by a ``hiredis.Reader`` and handed to the callers in order
(RESP2 replies as they are, no response callbacks: an ``XREAD`` is nested lists). Calls from
many tasks share it, pipelined, so it needs no pool. A blocking command (``XREAD BLOCK``) holds
the line for its wait: such a reader has a line of its own.

Made only for plain TCP and Unix-socket servers (``RedisLine.of``); TLS, a cluster or any other
connection class keeps redis-py's path. It connects as the client's pool would (host or path,
database, user and password, connect timeout) and answers within the pool's socket timeout; a
command that takes longer, or a lost connection, fails every call in flight
(``ConnectionError``, ``TimeoutError``; a server's error reply is ``ResponseError``), and the
next call connects again. Callers wrap these with ``redis_errors`` like any other call.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Sequence
from typing import Any

import hiredis
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection
from redis.exceptions import ResponseError

from service.backends.redis import RedisClient


class _Replies(asyncio.Protocol):
    def __init__(self) -> None:
        self.reader = hiredis.Reader(replyError=ResponseError)
        self.waiting: deque[asyncio.Future[Any]] = deque()
        #: asyncio's or uvloop's transport (uvloop's does not subclass ``asyncio.Transport``).
        self.transport: Any = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while (reply := self.reader.gets()) is not False:
            if not self.waiting:  # nothing asked for it: the stream is out of step
                self.fail(ConnectionError("redis sent a reply nobody asked for"))
                return
            future = self.waiting.popleft()
            if future.done():  # its caller gave up (cancelled): the reply is dropped
                continue
            if isinstance(reply, ResponseError):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._fail_waiting(ConnectionError(f"redis connection lost: {exc!r}"))

    def fail(self, error: Exception) -> None:
        """Close the connection (its state is unknown) and fail every call in flight."""
        self.lost = True
        if self.transport is not None:
            self.transport.abort()
        self._fail_waiting(error)

    def _fail_waiting(self, error: Exception) -> None:
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(error)


class RedisLine:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        path: str | None,
        db: int,
        username: str | None,
        password: str | None,
        connect_timeout: float | None,
        timeout: float | None,
    ) -> None:
        self._host = host
        self._port = port
        self._path = path
        self._db = db
        self._username = username
        self._password = password
        self._connect_timeout = connect_timeout
        self._timeout = timeout
        self._replies: _Replies | None = None
        self._connecting: asyncio.Lock | None = None

    @classmethod
    def of(cls, client: RedisClient) -> RedisLine | None:
        """A line to ``client``'s server, or None where redis-py's path must stay (TLS, a
        cluster, another connection class)."""
        pool = getattr(client, "connection_pool", None)
        if pool is None:
            return None
        kind = pool.connection_class
        unix = issubclass(kind, UnixDomainSocketConnection)
        if not unix and (not issubclass(kind, Connection) or issubclass(kind, SSLConnection)):
            return None
        kwargs = pool.connection_kwargs
        if kwargs.get("protocol") not in (None, 2, "2") or kwargs.get("credential_provider"):
            return None
        return cls(
            host=str(kwargs.get("host") or "localhost"),
            port=int(kwargs.get("port", 6379)),
            path=kwargs.get("path") if unix else None,
            db=int(kwargs.get("db") or 0),
            username=kwargs.get("username"),
            password=kwargs.get("password"),
            connect_timeout=kwargs.get("socket_connect_timeout"),
            timeout=kwargs.get("socket_timeout"),
        )

    async def call(self, *args: Any, wait: float = 0.0) -> Any:
        """Send one command, return its reply. ``wait``: how long the command itself may
        block on the server (``XREAD BLOCK``), on top of the socket timeout."""
        replies = self._replies
        if replies is None or replies.lost or replies.transport is None:
            replies = await self._connect()
        return await self._send(replies, args, wait)

    async def script(self, sha: str, source: str, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """EVALSHA, loading the script when the server does not know it (a restart)."""
        try:
            return await self.call("EVALSHA", sha, len(keys), *keys, *args)
        except ResponseError as error:
            if not str(error).startswith("NOSCRIPT"):
                raise
        await self.call("SCRIPT", "LOAD", source)
        return await self.call("EVALSHA", sha, len(keys), *keys, *args)

    async def close(self) -> None:
        replies, self._replies = self._replies, None
        if replies is not None and replies.transport is not None:
            replies.fail(ConnectionError("redis line closed"))

    async def _send(self, replies: _Replies, args: Sequence[Any], wait: float) -> Any:
        if replies.lost or replies.transport is None:
            raise ConnectionError("redis connection lost")
        # Packed first: an argument hiredis refuses (TypeError) must not leave a waiter
        # behind, which would take the next command's reply.
        packed = hiredis.pack_command(tuple(args))
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        replies.waiting.append(future)
        replies.transport.write(packed)
        if self._timeout is None:
            return await future
        try:
            async with asyncio.timeout(self._timeout + wait):
                return await future
        except TimeoutError:
            replies.fail(TimeoutError("redis did not answer in time"))
            raise

    async def _connect(self) -> _Replies:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            current = self._replies
            if current is not None and not current.lost and current.transport is not None:
                return current  # another caller connected meanwhile
            loop = asyncio.get_running_loop()
            async with asyncio.timeout(self._connect_timeout):
                if self._path is not None:
                    _, replies = await loop.create_unix_connection(_Replies, self._path)
                else:
                    _, replies = await loop.create_connection(_Replies, self._host, self._port)
            try:
                if self._password is not None:
                    login = (
                        (self._username, self._password) if self._username else (self._password,)
                    )
                    await self._send(replies, ("AUTH", *login), 0.0)
                if self._db:
                    await self._send(replies, ("SELECT", self._db), 0.0)
            except BaseException:
                with contextlib.suppress(Exception):
                    replies.fail(ConnectionError("redis line set-up failed"))
                raise
            self._replies = replies
            return replies
