"""Commands packed by hiredis: the bytes redis-py would write, its own errors where hiredis
refuses, and a real server that understands them (``service/backends/redis_packing.py``)."""

from __future__ import annotations

import enum
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection
from redis.exceptions import DataError

from service.backends.redis import create_redis_client, dedicated_client
from service.backends.redis_packing import HiredisPacking, with_hiredis_packing

PLAIN = Connection()
PACKED = with_hiredis_packing(Connection)()

ARGUMENTS = st.one_of(
    st.text(),
    st.binary(),
    st.integers(),
    st.floats(),  # inf and nan included: both write repr()
    st.builds(memoryview, st.binary()),
)


def wire(conn: Any, *args: Any) -> bytes:
    return b"".join(bytes(part) for part in conn.pack_command(*args))


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(["SET", "XADD", "EVALSHA", "hset"]), st.lists(ARGUMENTS, max_size=12))
def test_a_command_is_packed_as_redis_py_packs_it(name: str, args: list[Any]) -> None:
    assert wire(PACKED, name, *args) == wire(PLAIN, name, *args)


class Level(enum.IntEnum):
    HIGH = 3


@pytest.mark.parametrize(
    "args",
    [("CONFIG GET", "maxmemory"), ("SET", "k", Level.HIGH)],
    ids=["multi-word name", "int enum"],
)
def test_what_hiredis_does_not_take_goes_through_redis_py(args: tuple[Any, ...]) -> None:
    assert wire(PACKED, *args) == wire(PLAIN, *args)


@pytest.mark.parametrize("value", [True, None])
def test_redis_py_refuses_what_it_always_refused(value: Any) -> None:
    with pytest.raises(DataError):
        PACKED.pack_command("SET", "k", value)


def test_each_connection_class_gets_one_packing_subclass() -> None:
    for cls in (Connection, SSLConnection, UnixDomainSocketConnection):
        packed = with_hiredis_packing(cls)
        assert issubclass(packed, cls) and issubclass(packed, HiredisPacking)
        assert with_hiredis_packing(cls) is packed
        assert with_hiredis_packing(packed) is packed


@pytest.mark.redis
async def test_a_server_understands_packed_commands(redis_url: str) -> None:
    client = create_redis_client(redis_url, max_connections=2, timeout=2.0)
    reader = dedicated_client(client, max_connections=1)
    try:
        for made in (client, reader):
            assert issubclass(made.connection_pool.connection_class, HiredisPacking)
        key = "kt:packing:şehir"
        await client.delete(key)
        await client.hset(key, mapping={"ş": "değer", "n": 12, "f": 0.5, "b": b"\x00\xff"})
        assert await client.hgetall(key) == {
            "ş".encode(): "değer".encode(),
            b"n": b"12",
            b"f": b"0.5",
            b"b": b"\x00\xff",
        }
        async with client.pipeline(transaction=True) as pipe:
            pipe.hincrby(key, "n", 30).hget(key, "n")
            assert await pipe.execute() == [42, b"42"]
        assert await reader.hget(key, "n") == b"42"
        await client.delete(key)
    finally:
        await reader.aclose()
        await client.aclose()
