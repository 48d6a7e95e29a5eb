"""``RedisLine`` on the real Redis: pipelined calls answered in order, raw RESP2 replies, errors
as redis-py's, the script fallback, and a lost or silent connection failing its calls and
connecting again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
import uvloop
from redis.exceptions import ResponseError

from service.backends import redis_backends
from service.backends.redis_line import RedisLine
from tests.conftest import unique
from tests.operations.redis_server import NO_PERSISTENCE, RedisServer


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    made = aioredis.Redis.from_url(redis_url)
    yield made
    await made.aclose()


@pytest.fixture
async def line(client: aioredis.Redis) -> AsyncIterator[RedisLine]:
    made = RedisLine.of(client)
    assert made is not None
    yield made
    await made.close()


async def test_calls_from_many_tasks_are_answered_each_with_its_own_reply(
    line: RedisLine, client: aioredis.Redis
) -> None:
    key = unique("line")
    try:
        replies = await asyncio.gather(*(line.call("INCR", key) for _ in range(300)))
        assert sorted(replies) == list(range(1, 301))
        assert await line.call("SET", key, b"\x00bytes\xff") == b"OK"
        assert await line.call("GET", key) == b"\x00bytes\xff"
        assert await client.get(key) == b"\x00bytes\xff"
    finally:
        await client.delete(key)


async def test_stream_reads_come_as_raw_nested_lists(
    line: RedisLine, client: aioredis.Redis
) -> None:
    key = unique("line-stream")
    try:
        await client.xadd(key, {"p": b"one", "e": "ep"}, id="1-0")
        reply = await line.call("XREAD", "COUNT", 10, "STREAMS", key, "0-0")
        assert reply == [[key.encode(), [[b"1-0", [b"p", b"one", b"e", b"ep"]]]]]
        # A blocking read answered with nil at its end, not cut off by the socket timeout.
        assert await line.call("XREAD", "BLOCK", 100, "STREAMS", key, "$", wait=0.1) is None
    finally:
        await client.delete(key)


async def test_an_error_reply_is_a_response_error_and_the_line_goes_on(line: RedisLine) -> None:
    with pytest.raises(ResponseError, match="unknown command"):
        await line.call("NO-SUCH-COMMAND")
    key = unique("line")
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await asyncio.gather(line.call("SET", key, "x"), line.call("LPUSH", key, "y"))
    assert await line.call("GET", key) == b"x"
    await line.call("DEL", key)


async def test_an_argument_it_cannot_send_is_refused_before_anything_is_sent(
    line: RedisLine,
) -> None:
    with pytest.raises(TypeError):
        await line.call("SET", unique("line"), None)
    assert await line.call("ECHO", "next") == b"next"


async def test_a_script_the_server_forgot_is_loaded_again(
    line: RedisLine, client: aioredis.Redis
) -> None:
    source = "return {KEYS[1], ARGV[1], 7}"
    sha = client.register_script(source).sha
    await line.call("SCRIPT", "FLUSH")
    assert await line.script(sha, source, ["k"], [b"v"]) == [b"k", b"v", 7]
    assert await line.script(sha, source, ["k2"], ["w"]) == [b"k2", b"w", 7]


async def test_a_cancelled_call_does_not_shift_the_others_replies(line: RedisLine) -> None:
    key = unique("line")
    blocked = asyncio.create_task(line.call("BLPOP", key, 0.3, wait=1))
    after = asyncio.create_task(line.call("ECHO", "after"))
    await asyncio.sleep(0.05)
    blocked.cancel()
    assert await after == b"after"
    assert await line.call("ECHO", "next") == b"next"


async def test_a_killed_connection_fails_its_calls_and_the_next_call_connects_again(
    line: RedisLine, client: aioredis.Redis
) -> None:
    name = unique("line-victim")
    await line.call("CLIENT", "SETNAME", name)
    waiting = asyncio.create_task(line.call("BLPOP", unique("line"), 5, wait=5))
    await asyncio.sleep(0.05)
    assert await client.client_kill_filter(_type=None, skipme=True, _id=await _id_of(client, name))
    with pytest.raises(ConnectionError):
        await waiting
    assert await line.call("PING") == b"PONG"


async def test_a_server_silent_past_the_timeout_fails_the_call(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url, socket_timeout=0.2)
    line = RedisLine.of(client)
    assert line is not None
    try:
        with pytest.raises(TimeoutError):
            await line.call("BLPOP", unique("line"), 1)  # blocks longer, told no wait
        assert await line.call("PING") == b"PONG"
    finally:
        await line.close()
        await client.aclose()


async def test_it_selects_the_database_of_the_url(redis_url: str) -> None:
    url = redis_url.rsplit("/", 1)[0] + "/5"
    client = aioredis.Redis.from_url(url)
    line = RedisLine.of(client)
    assert line is not None
    key = unique("line-db")
    try:
        await line.call("SET", key, "in five")
        assert await client.get(key) == b"in five"
    finally:
        await client.delete(key)
        await line.close()
        await client.aclose()


async def test_only_plain_servers_get_a_line(redis_url: str) -> None:
    tls = aioredis.Redis.from_url(redis_url.replace("redis://", "rediss://"))
    resp3 = aioredis.Redis.from_url(redis_url, protocol=3)
    try:
        assert RedisLine.of(tls) is None
        assert RedisLine.of(resp3) is None
    finally:
        await tls.aclose()
        await resp3.aclose()
    backends = redis_backends(redis_url, unique("line-ns"))
    try:
        assert backends.redis is not None and RedisLine.of(backends.redis) is not None
    finally:
        await backends.close()


def test_it_works_on_uvloop_as_the_servers_run(redis_url: str) -> None:
    async def scenario() -> list[object]:
        client = aioredis.Redis.from_url(redis_url)
        line = RedisLine.of(client)
        assert line is not None
        key = unique("line-uv")
        try:
            replies = await asyncio.gather(*(line.call("INCR", key) for _ in range(50)))
            return [sorted(replies), await line.call("DEL", key)]
        finally:
            await line.close()
            await client.aclose()

    assert uvloop.run(scenario()) == [list(range(1, 51)), 1]


async def test_it_logs_in_with_the_urls_password_or_user(tmp_path: Path) -> None:
    """A Redis that requires a password (``requirepass``) and has an ACL user: the line logs in
    as the client's URL says, and a wrong password fails the call with the server's answer."""
    server = RedisServer(tmp_path, (*NO_PERSISTENCE, "--requirepass", "s3cret"))
    server.url = f"redis://:s3cret@127.0.0.1:{server.port}/0"
    server.start()
    try:
        admin = aioredis.Redis.from_url(server.url)
        await admin.acl_setuser(
            "agent", enabled=True, passwords=["+pw2"], keys=["*"], commands=["+@all"]
        )
        # The password alone (the default user), then an ACL user in another database.
        for url, db in (
            (server.url, 0),
            (f"redis://agent:pw2@127.0.0.1:{server.port}/3", 3),
        ):
            client = aioredis.Redis.from_url(url)
            line = RedisLine.of(client)
            assert line is not None
            try:
                assert await line.call("ACL", "WHOAMI") == (b"agent" if db else b"default")
                await line.call("SET", "who", url)
                # In the URL's database, as redis-py's own connection sees it.
                assert await client.get("who") == url.encode()
            finally:
                await line.close()
                await client.aclose()
        wrong = aioredis.Redis.from_url(f"redis://:nope@127.0.0.1:{server.port}/0")
        line = RedisLine.of(wrong)
        assert line is not None
        with pytest.raises(ResponseError, match="WRONGPASS"):
            await line.call("PING")
        await line.close()
        await wrong.aclose()
        await admin.aclose()
    finally:
        server.kill()


async def _id_of(client: aioredis.Redis, name: str) -> str:
    for each in await client.client_list():
        if each.get("name") == name:
            return str(each["id"])
    raise AssertionError(f"no client named {name}")
