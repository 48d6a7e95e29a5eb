"""Redis commands packed by hiredis (C) instead of redis-py's Python encoder.

redis-py's asyncio connections pack every command in Python, one ``Encoder.encode`` call per
argument; the live-support relay sends a script call of six arguments per message and reads
hundreds of streams per ``XREAD``, and the packing was about a twentieth of each serving
process's time (``bench/bench_support.py``, py-spy). ``hiredis.pack_command`` writes the same
bytes (str as UTF-8, int and float as their ``repr``, bytes and memoryview as they are). A
command it does not take (another type: redis-py raises its own ``DataError`` for bool and
None, formats other types its way) and a multi-word command name (``CONFIG GET``, which
redis-py splits into words) go through redis-py's own packing, so nothing changes on the wire.
Used for one server's connections (``create_redis_client``, and ``dedicated_client``, which
takes its pool's class); a Redis Cluster client keeps redis-py's own packing.
"""

from __future__ import annotations

from typing import Any

import hiredis
from redis.asyncio.connection import AbstractConnection


class HiredisPacking:
    """A mixin over a redis-py asyncio connection class."""

    def pack_command(self, *args: Any) -> list[bytes]:
        first = args[0] if args else None
        if isinstance(first, str) and " " not in first:
            try:
                return [hiredis.pack_command(args)]
            except TypeError:
                pass
        packed: list[bytes] = super().pack_command(*args)  # type: ignore[misc]
        return packed


_packed: dict[type[AbstractConnection], type[AbstractConnection]] = {}


def with_hiredis_packing(cls: type[AbstractConnection]) -> type[AbstractConnection]:
    """``cls`` packing its commands with hiredis (one subclass per class)."""
    if issubclass(cls, HiredisPacking):
        return cls
    packed = _packed.get(cls)
    if packed is None:
        packed = type(f"HiredisPacked{cls.__name__}", (HiredisPacking, cls), {})
        _packed[cls] = packed
    return packed
