"""The support bench's lean WebSocket client against a real server (the ``websockets`` one)."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.server import ServerConnection, serve

from bench import wsclient


async def _echo(ws: ServerConnection) -> None:
    async for message in ws:
        if message == "ping me":
            pong = await ws.ping(b"p1")
            await asyncio.wait_for(pong, 5)  # answered, or the reply below never comes
            await ws.send("pinged")
        elif message == "close me":
            await ws.close(4001, "asked to")
        elif message == "fragments":
            await ws.send(["one ", "two ", "three"])
        else:
            await ws.send(message)


@pytest.fixture
async def url() -> AsyncIterator[str]:
    async with serve(_echo, "127.0.0.1", 0, max_size=None, compression=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}/echo"


async def test_text_binary_and_long_messages_come_back(url: str) -> None:
    socket = await wsclient.connect(url)
    await socket.send("Merhaba")
    assert await socket.recv() == "Merhaba"
    await socket.send(b"\x00\xff", text=False)
    assert await socket.recv(decode=False) == b"\x00\xff"
    for size in (125, 126, 65_535, 65_536, 200_000):  # every length encoding's edges
        await socket.send(b"x" * size)
        assert await socket.recv(decode=False) == b"x" * size
    await socket.close()


async def test_fragments_are_one_message_and_pings_are_answered(url: str) -> None:
    socket = await wsclient.connect(url)
    await socket.send("fragments")
    assert await socket.recv() == "one two three"
    await socket.send("ping me")
    assert await socket.recv() == "pinged"
    await socket.send("still here")
    assert await socket.recv() == "still here"
    await socket.close()


async def test_a_message_tells_when_its_bytes_were_read_not_when_it_was_taken(url: str) -> None:
    socket = await wsclient.connect(url)
    sent = time.perf_counter()
    await socket.send("first")
    await socket.send("second")
    deadline = time.monotonic() + 10
    while len(socket._messages) < 2 and time.monotonic() < deadline:  # both read, none taken
        await asyncio.sleep(0.01)
    taken = time.perf_counter()
    assert await socket.recv() == "first"
    first = socket.received_at
    assert sent < first < taken
    await asyncio.sleep(0.05)
    assert await socket.recv() == "second"
    assert first <= socket.received_at < taken
    await socket.close()


async def test_handed_over_messages_come_in_the_read_callback_in_order(url: str) -> None:
    socket = await wsclient.connect(url)
    await socket.send("before")
    deadline = time.monotonic() + 10
    while not socket._messages and time.monotonic() < deadline:  # read, not taken yet
        await asyncio.sleep(0.01)
    got: list[tuple[bytes, float]] = []
    closed: list[wsclient.ConnectionClosed] = []
    arrived = asyncio.Event()

    def take(message: bytes, read_at: float) -> None:
        got.append((message, read_at))
        if message == b"after":
            arrived.set()
        elif message == b"answer me":
            socket.send_nowait("after")  # from inside the read's callback

    socket.hand_over(take, closed.append)
    assert [m for m, _ in got] == [b"before"]  # the one read before, handed over at once
    await socket.send("answer me")
    await asyncio.wait_for(arrived.wait(), 10)
    assert [m for m, _ in got] == [b"before", b"answer me", b"after"]
    assert all(earlier[1] <= later[1] for earlier, later in itertools.pairwise(got))
    socket.hand_over(None)  # back to recv
    await socket.send("by recv")
    assert await socket.recv() == "by recv"
    socket.hand_over(take, closed.append)
    await socket.send("close me")
    deadline = time.monotonic() + 10
    while not closed and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert [c.code for c in closed] == [4001]  # told once
    await socket.close()
    assert len(closed) == 1


async def test_a_server_close_ends_the_reads_with_its_code(url: str) -> None:
    socket = await wsclient.connect(url)
    await socket.send("close me")
    with pytest.raises(wsclient.ConnectionClosed) as closed:
        await socket.recv()
    assert closed.value.code == 4001 and closed.value.reason == "asked to"
    with pytest.raises(wsclient.ConnectionClosed):
        await socket.send("after the close")


async def test_a_refused_upgrade_is_an_error() -> None:
    async def plain(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(plain, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        with pytest.raises(ConnectionError, match="403"):
            await wsclient.connect(f"ws://127.0.0.1:{port}/", open_timeout=5)
