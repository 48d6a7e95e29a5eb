"""The signaling store on the process's state backend."""

from __future__ import annotations

from service.backends import Backends
from service.rtc.signals import SignalStore
from service.rtc.signals_memory import MemorySignalStore
from service.rtc.signals_redis import RedisSignalStore


def create_signal_store(backends: Backends) -> SignalStore:
    if backends.kind == "redis":
        return RedisSignalStore(backends)
    if backends.keyspace is None:
        raise ValueError("memory backends without a keyspace")
    return MemorySignalStore(backends.keyspace)
