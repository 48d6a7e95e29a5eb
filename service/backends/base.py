"""The state backend interfaces: small async protocols with a memory and a Redis implementation.

Keys given to a store are relative; every store prefixes them with the namespace from settings,
so two deployments (or two test runs) sharing one Redis never see each other's keys. Values are
bytes (callers serialise with orjson), field and key names are str.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Protocol

StreamEntry = tuple[str, dict[str, bytes]]


class KeyValueStore(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def get_many(self, keys: list[str]) -> list[bytes | None]: ...

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None: ...

    async def set_if_absent(self, key: str, value: bytes, *, ttl: float | None = None) -> bool:
        """Store only when the key does not exist; True when stored (a lock or dedupe marker)."""
        ...

    async def delete(self, *keys: str) -> int: ...

    async def delete_if_equals(self, key: str, value: bytes) -> bool:
        """Delete only when the stored value is ``value`` (release a lock held by its owner)."""
        ...

    async def ttl(self, key: str) -> float | None:
        """Seconds left before expiry; None when the key is missing or never expires."""
        ...


class CounterStore(Protocol):
    async def incr(self, key: str, amount: int = 1, *, ttl: float | None = None) -> int:
        """Add ``amount`` and return the new value; ``ttl`` starts when the counter is created."""
        ...

    async def get(self, key: str) -> int: ...

    async def reset(self, key: str) -> None: ...


class HashStore(Protocol):
    async def set(
        self, key: str, mapping: Mapping[str, bytes], *, ttl: float | None = None
    ) -> None: ...

    async def get(self, key: str, field: str) -> bytes | None: ...

    async def get_all(self, key: str) -> dict[str, bytes]: ...

    async def delete(self, key: str, *fields: str) -> int: ...

    async def incr(self, key: str, field: str, amount: int = 1) -> int: ...


class ListStore(Protocol):
    """FIFO lists: push at the tail, pop from the head."""

    async def push(self, key: str, *values: bytes, ttl: float | None = None) -> int: ...

    async def pop(self, key: str) -> bytes | None: ...

    async def range(self, key: str, start: int = 0, stop: int = -1) -> list[bytes]: ...

    async def length(self, key: str) -> int: ...

    async def remove(self, key: str, value: bytes) -> int:
        """Remove every occurrence of ``value``; return how many were removed."""
        ...

    async def position(self, key: str, value: bytes) -> int | None:
        """Zero-based index of the first occurrence of ``value``, None when absent."""
        ...


class Subscription(Protocol):
    def __aiter__(self) -> AsyncIterator[tuple[str, bytes]]: ...

    async def get(self, timeout: float | None = None) -> tuple[str, bytes] | None:
        """Next ``(channel, message)``; None when ``timeout`` passes first."""
        ...


class PubSub(Protocol):
    async def publish(self, channel: str, message: bytes) -> int: ...

    def subscribe(self, *channels: str) -> AbstractAsyncContextManager[Subscription]:
        """``async with pubsub.subscribe("a") as sub: async for channel, msg in sub: ...``"""
        ...


class StreamStore(Protocol):
    """Append-only logs with ids ``<ms>-<seq>`` that readers replay from."""

    async def append(
        self, stream: str, fields: Mapping[str, bytes], *, maxlen: int | None = None
    ) -> str: ...

    async def read(
        self, stream: str, after: str = "0-0", *, count: int = 100, block: float | None = None
    ) -> list[StreamEntry]:
        """Entries with an id greater than ``after``, oldest first; ``block`` waits for new ones."""
        ...

    async def length(self, stream: str) -> int: ...

    async def expire(self, stream: str, ttl: float) -> None: ...

    async def delete(self, stream: str) -> None: ...
