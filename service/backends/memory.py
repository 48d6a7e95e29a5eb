"""In-process implementations of the state backend interfaces (the embedded default).

All stores share one keyspace, as they would on one Redis server, with lazy expiry on access
plus a heap that evicts expired keys on every write so that memory stays bounded when many
short-lived keys are written and never read again.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from service.backends.base import StreamEntry

T = TypeVar("T")


@dataclass
class _Entry:
    value: Any
    expires_at: float | None = None


class MemoryKeyspace:
    """The shared dictionary behind every memory store."""

    def __init__(self, namespace: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.namespace = namespace
        self._clock = clock
        self._data: dict[str, _Entry] = {}
        self._expiry_heap: list[tuple[float, str]] = []

    def full_key(self, key: str) -> str:
        return f"{self.namespace}:{key}"

    def now(self) -> float:
        return self._clock()

    def lookup(self, key: str) -> _Entry | None:
        full = self.full_key(key)
        entry = self._data.get(full)
        if entry is None:
            return None
        if entry.expires_at is not None and entry.expires_at <= self._clock():
            del self._data[full]
            return None
        return entry

    def get_value(self, key: str, kind: type[T]) -> T | None:
        entry = self.lookup(key)
        if entry is None:
            return None
        if not isinstance(entry.value, kind):
            raise TypeError(
                f"key {key!r} holds a {type(entry.value).__name__}, not {kind.__name__}"
            )
        return entry.value

    def put(self, key: str, value: Any, ttl: float | None, *, keep_ttl: bool = False) -> None:
        self._evict_expired()
        full = self.full_key(key)
        old = self._data.get(full)
        if keep_ttl and old is not None and ttl is None:
            expires_at = old.expires_at
        else:
            expires_at = None if ttl is None else self._clock() + ttl
        self._data[full] = _Entry(value, expires_at)
        if expires_at is not None:
            heapq.heappush(self._expiry_heap, (expires_at, full))

    def set_ttl(self, key: str, ttl: float) -> None:
        entry = self.lookup(key)
        if entry is not None:
            entry.expires_at = self._clock() + ttl
            heapq.heappush(self._expiry_heap, (entry.expires_at, self.full_key(key)))

    def remove(self, key: str) -> bool:
        return self._data.pop(self.full_key(key), None) is not None

    def _evict_expired(self) -> None:
        now = self._clock()
        heap = self._expiry_heap
        while heap and heap[0][0] <= now:
            _, full = heapq.heappop(heap)
            entry = self._data.get(full)
            # The heap can hold stale deadlines for keys rewritten with a new TTL.
            if entry is not None and entry.expires_at is not None and entry.expires_at <= now:
                del self._data[full]

    def __len__(self) -> int:
        return len(self._data)


class MemoryKeyValueStore:
    def __init__(self, space: MemoryKeyspace) -> None:
        self._space = space

    async def get(self, key: str) -> bytes | None:
        return self._space.get_value(key, bytes)

    async def get_many(self, keys: list[str]) -> list[bytes | None]:
        return [self._space.get_value(k, bytes) for k in keys]

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        self._space.put(key, bytes(value), ttl)

    async def set_if_absent(self, key: str, value: bytes, *, ttl: float | None = None) -> bool:
        if self._space.lookup(key) is not None:
            return False
        self._space.put(key, bytes(value), ttl)
        return True

    async def delete(self, *keys: str) -> int:
        return sum(self._space.remove(k) for k in keys if self._space.lookup(k) is not None)

    async def delete_if_equals(self, key: str, value: bytes) -> bool:
        if self._space.get_value(key, bytes) == value:
            return self._space.remove(key)
        return False

    async def ttl(self, key: str) -> float | None:
        entry = self._space.lookup(key)
        if entry is None or entry.expires_at is None:
            return None
        return max(0.0, entry.expires_at - self._space.now())


class MemoryCounterStore:
    def __init__(self, space: MemoryKeyspace) -> None:
        self._space = space

    async def incr(self, key: str, amount: int = 1, *, ttl: float | None = None) -> int:
        current = self._space.get_value(key, int)
        if current is None:
            self._space.put(key, amount, ttl)
            return amount
        self._space.put(key, current + amount, None, keep_ttl=True)
        return current + amount

    async def get(self, key: str) -> int:
        return self._space.get_value(key, int) or 0

    async def reset(self, key: str) -> None:
        self._space.remove(key)


class MemoryHashStore:
    def __init__(self, space: MemoryKeyspace) -> None:
        self._space = space

    def _hash(self, key: str) -> dict[str, Any]:
        found = self._space.get_value(key, dict)
        if found is None:
            found = {}
            self._space.put(key, found, None)
        return found

    async def set(
        self, key: str, mapping: Mapping[str, bytes], *, ttl: float | None = None
    ) -> None:
        self._hash(key).update({k: bytes(v) for k, v in mapping.items()})
        if ttl is not None:
            self._space.set_ttl(key, ttl)

    async def get(self, key: str, field: str) -> bytes | None:
        found = self._space.get_value(key, dict)
        if found is None:
            return None
        value = found.get(field)
        return str(value).encode() if isinstance(value, int) else value

    async def get_all(self, key: str) -> dict[str, bytes]:
        found = self._space.get_value(key, dict) or {}
        return {k: str(v).encode() if isinstance(v, int) else v for k, v in found.items()}

    async def delete(self, key: str, *fields: str) -> int:
        found = self._space.get_value(key, dict)
        if found is None:
            return 0
        removed = sum(found.pop(f, None) is not None for f in fields)
        if not found:
            self._space.remove(key)
        return removed

    async def incr(self, key: str, field: str, amount: int = 1) -> int:
        h = self._hash(key)
        current = h.get(field, 0)
        value = (int(current) if isinstance(current, bytes) else current) + amount
        h[field] = value
        return value


class MemoryListStore:
    def __init__(self, space: MemoryKeyspace) -> None:
        self._space = space

    async def push(self, key: str, *values: bytes, ttl: float | None = None) -> int:
        items = self._space.get_value(key, deque)
        if items is None:
            items = deque()
            self._space.put(key, items, ttl)
        elif ttl is not None:
            self._space.set_ttl(key, ttl)
        items.extend(bytes(v) for v in values)
        return len(items)

    async def pop(self, key: str) -> bytes | None:
        items = self._space.get_value(key, deque)
        if not items:
            return None
        value: bytes = items.popleft()
        if not items:
            self._space.remove(key)
        return value

    async def range(self, key: str, start: int = 0, stop: int = -1) -> list[bytes]:
        items = list(self._space.get_value(key, deque) or ())
        # Redis LRANGE semantics: ``stop`` is inclusive, negative indexes count from the end.
        end = len(items) if stop == -1 else (stop + 1 if stop >= 0 else len(items) + stop + 1)
        return items[start:end]

    async def length(self, key: str) -> int:
        return len(self._space.get_value(key, deque) or ())

    async def remove(self, key: str, value: bytes) -> int:
        items = self._space.get_value(key, deque)
        if not items:
            return 0
        kept = [v for v in items if v != value]
        removed = len(items) - len(kept)
        items.clear()
        items.extend(kept)
        if not items:
            self._space.remove(key)
        return removed

    async def position(self, key: str, value: bytes) -> int | None:
        for index, item in enumerate(self._space.get_value(key, deque) or ()):
            if item == value:
                return index
        return None


class _MemorySubscription:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(maxsize=10_000)

    async def get(self, timeout: float | None = None) -> tuple[str, bytes] | None:
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return None

    async def __aiter__(self) -> AsyncIterator[tuple[str, bytes]]:
        while True:
            yield await self.queue.get()


class MemoryPubSub:
    def __init__(self, space: MemoryKeyspace) -> None:
        self._space = space
        self._subscribers: dict[str, set[_MemorySubscription]] = {}

    async def publish(self, channel: str, message: bytes) -> int:
        delivered = 0
        for sub in list(self._subscribers.get(self._space.full_key(channel), ())):
            try:
                sub.queue.put_nowait((channel, bytes(message)))
                delivered += 1
            except asyncio.QueueFull:
                # A subscriber that stopped reading loses messages instead of growing memory,
                # as a Redis client buffer limit would disconnect it.
                continue
        return delivered

    @asynccontextmanager
    async def subscribe(self, *channels: str) -> AsyncIterator[_MemorySubscription]:
        sub = _MemorySubscription()
        fulls = [self._space.full_key(c) for c in channels]
        for full in fulls:
            self._subscribers.setdefault(full, set()).add(sub)
        try:
            yield sub
        finally:
            for full in fulls:
                subs = self._subscribers.get(full)
                if subs is not None:
                    subs.discard(sub)
                    if not subs:
                        del self._subscribers[full]


@dataclass
class _Stream:
    entries: deque[tuple[tuple[int, int], dict[str, bytes]]] = field(default_factory=deque)
    last_id: tuple[int, int] = (0, 0)
    changed: asyncio.Event = field(default_factory=asyncio.Event)


def parse_stream_id(value: str) -> tuple[int, int]:
    ms, _, seq = value.partition("-")
    try:
        return int(ms), int(seq or 0)
    except ValueError:
        raise ValueError(f"invalid stream id {value!r}") from None


def _format_id(ident: tuple[int, int]) -> str:
    return f"{ident[0]}-{ident[1]}"


class MemoryStreamStore:
    def __init__(self, space: MemoryKeyspace, wall_ms: Callable[[], int] | None = None) -> None:
        self._space = space
        self._wall_ms = wall_ms or (lambda: time.time_ns() // 1_000_000)

    def _stream(self, stream: str, create: bool) -> _Stream | None:
        found = self._space.get_value(stream, _Stream)
        if found is None and create:
            found = _Stream()
            self._space.put(stream, found, None)
        return found

    async def append(
        self, stream: str, fields: Mapping[str, bytes], *, maxlen: int | None = None
    ) -> str:
        s = self._stream(stream, True)
        assert s is not None
        ms = self._wall_ms()
        last_ms, last_seq = s.last_id
        ident = (ms, 0) if ms > last_ms else (last_ms, last_seq + 1)
        s.entries.append((ident, {k: bytes(v) for k, v in fields.items()}))
        s.last_id = ident
        if maxlen is not None:
            while len(s.entries) > maxlen:
                s.entries.popleft()
        s.changed.set()
        s.changed = asyncio.Event()
        return _format_id(ident)

    async def read(
        self, stream: str, after: str = "0-0", *, count: int = 100, block: float | None = None
    ) -> list[StreamEntry]:
        after_id = parse_stream_id(after)
        s = self._stream(stream, block is not None)
        if s is None:
            return []
        found = [(i, f) for i, f in s.entries if i > after_id][:count]
        if not found and block is not None:
            try:
                await asyncio.wait_for(s.changed.wait(), block)
            except TimeoutError:
                return []
            found = [(i, f) for i, f in s.entries if i > after_id][:count]
        return [(_format_id(i), dict(f)) for i, f in found]

    async def length(self, stream: str) -> int:
        s = self._stream(stream, False)
        return 0 if s is None else len(s.entries)

    async def expire(self, stream: str, ttl: float) -> None:
        self._space.set_ttl(stream, ttl)

    async def delete(self, stream: str) -> None:
        self._space.remove(stream)
