"""The waiting queue on Redis (scaled mode): every process shares one queue.

Each mutating operation is one Lua script (``service/lua/support_queue_<op>.lua``), so joining,
leaving and handing the head to an admin are single atomic steps across all processes. Every
script receives the same ten keys, all under the hash tag ``{sup}`` (see
``service/backends/keys.py``). Reads are plain commands, except the waiting list, which is read
by a script too so that customers, join times and disconnect marks come from one instant.

Times travel as ``repr(float)``, which Redis and Lua parse back to the same double, and Lua
stores its results with 17 significant digits, so the handle-time statistics agree bit for bit
with the in-process queue's.
"""

from __future__ import annotations

from typing import Any

from core.errors import StateBackendError
from core.support.eta import DEFAULT_ALPHA, HandleStats, check_alpha
from service.backends import Backends, keys
from service.backends.errors import redis_errors
from service.backends.lua import LuaScript
from service.support.waitqueue import (
    Assigned,
    Assignment,
    Full,
    JoinResult,
    Waiting,
    WaitingCustomer,
)

_KEYS = (
    keys.SUPPORT_QUEUE_WAITING,
    keys.SUPPORT_QUEUE_SEQUENCE,
    keys.SUPPORT_QUEUE_JOINED,
    keys.SUPPORT_QUEUE_DISCONNECTED,
    keys.SUPPORT_QUEUE_FREE,
    keys.SUPPORT_QUEUE_ADMIN_CUSTOMER,
    keys.SUPPORT_QUEUE_CUSTOMER_ADMIN,
    keys.SUPPORT_QUEUE_ASSIGNED_AT,
    keys.SUPPORT_QUEUE_STATS,
    keys.SUPPORT_QUEUE_VERSION,
)


def _t(value: float) -> str:
    return repr(float(value))


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _opt_s(value: Any) -> str | None:
    return None if value is None else _s(value)


class RedisWaitQueue:
    kind = "redis"

    def __init__(self, backends: Backends, *, alpha: float = DEFAULT_ALPHA) -> None:
        if backends.redis is None:
            raise ValueError("RedisWaitQueue needs Redis backends")
        self.alpha = check_alpha(alpha)
        # redis-py's annotations mix str and bytes results; replies are decoded here.
        self._r: Any = backends.redis
        self._keys = [backends.key(k) for k in _KEYS]
        self._wait = backends.key(keys.SUPPORT_QUEUE_WAITING)
        self._free = backends.key(keys.SUPPORT_QUEUE_FREE)
        self._a2c = backends.key(keys.SUPPORT_QUEUE_ADMIN_CUSTOMER)
        self._c2a = backends.key(keys.SUPPORT_QUEUE_CUSTOMER_ADMIN)
        self._at = backends.key(keys.SUPPORT_QUEUE_ASSIGNED_AT)
        self._stats = backends.key(keys.SUPPORT_QUEUE_STATS)
        self._version = backends.key(keys.SUPPORT_QUEUE_VERSION)
        redis = backends.redis
        self._join = LuaScript(redis, "support_queue_join")
        self._leave = LuaScript(redis, "support_queue_leave")
        self._admin_ready = LuaScript(redis, "support_queue_admin_ready")
        self._admin_away = LuaScript(redis, "support_queue_admin_away")
        self._finish = LuaScript(redis, "support_queue_finish")
        self._mark_disconnected = LuaScript(redis, "support_queue_mark_disconnected")
        self._mark_connected = LuaScript(redis, "support_queue_mark_connected")
        self._expire_disconnected = LuaScript(redis, "support_queue_expire_disconnected")
        self._expire_waited = LuaScript(redis, "support_queue_expire_waited")
        self._waiting = LuaScript(redis, "support_queue_waiting")

    # --- customers -------------------------------------------------------------------------
    async def join(self, customer: str, *, capacity: int, now: float) -> JoinResult:
        reply = await self._join(self._keys, [customer, str(int(capacity)), _t(now)])
        kind, value = _s(reply[0]), reply[1]
        if kind == "assigned":
            return Assigned(_s(value))
        if kind == "waiting":
            return Waiting(int(value))
        if kind == "full":
            return Full(int(value))
        raise StateBackendError(f"redis script support_queue_join answered {kind!r}")

    async def leave(self, customer: str) -> bool:
        return bool(await self._leave(self._keys, [customer]))

    async def position(self, customer: str) -> int | None:
        with redis_errors("ZRANK"):
            rank = await self._r.zrank(self._wait, customer)
        return None if rank is None else int(rank) + 1

    async def waiting(self) -> list[WaitingCustomer]:
        flat = await self._waiting(self._keys)
        return [
            WaitingCustomer(
                _s(flat[i]), float(flat[i + 1]), float(flat[i + 2]) if flat[i + 2] else None
            )
            for i in range(0, len(flat), 3)
        ]

    async def mark_disconnected(self, customer: str, *, until: float) -> bool:
        return bool(await self._mark_disconnected(self._keys, [customer, _t(until)]))

    async def mark_connected(self, customer: str) -> bool:
        return bool(await self._mark_connected(self._keys, [customer]))

    async def expire_disconnected(self, *, now: float) -> list[str]:
        return [_s(c) for c in await self._expire_disconnected(self._keys, [_t(now)])]

    async def expire_waited(self, *, now: float, max_wait: float) -> list[str]:
        cutoff = float(now) - float(max_wait)
        return [_s(c) for c in await self._expire_waited(self._keys, [_t(cutoff)])]

    # --- admins ----------------------------------------------------------------------------
    async def admin_ready(self, admin: str, *, now: float) -> str | None:
        return _opt_s(await self._admin_ready(self._keys, [admin, _t(now)]))

    async def admin_away(self, admin: str) -> None:
        await self._admin_away(self._keys, [admin])

    async def finish(self, admin: str, *, now: float) -> str | None:
        return _opt_s(await self._finish(self._keys, [admin, _t(now), _t(self.alpha)]))

    async def assignment_of_admin(self, admin: str) -> str | None:
        with redis_errors("HGET"):
            return _opt_s(await self._r.hget(self._a2c, admin))

    async def assignment_of_customer(self, customer: str) -> str | None:
        with redis_errors("HGET"):
            return _opt_s(await self._r.hget(self._c2a, customer))

    async def free_admins(self) -> list[str]:
        with redis_errors("ZRANGE"):
            return [_s(a) for a in await self._r.zrange(self._free, 0, -1)]

    async def assignments(self) -> list[Assignment]:
        with redis_errors("HGETALL"):
            # MULTI: both hashes from one instant (the scripts change them together).
            async with self._r.pipeline(transaction=True) as pipe:
                pipe.hgetall(self._a2c)
                pipe.hgetall(self._at)
                serving, since = await pipe.execute()
        held = [Assignment(_s(a), _s(c), float(since[a])) for a, c in serving.items() if a in since]
        return sorted(held, key=lambda h: (h.assigned_at, h.admin))

    # --- statistics ------------------------------------------------------------------------
    async def handle_stats(self) -> HandleStats | None:
        with redis_errors("HMGET"):
            ewma, spread, count = await self._r.hmget(self._stats, ["ewma", "spread", "count"])
        if ewma is None or spread is None or count is None:
            return None
        return HandleStats(float(ewma), float(spread), int(count))

    async def handle_time(self) -> float | None:
        with redis_errors("HGET"):
            ewma = await self._r.hget(self._stats, "ewma")
        return None if ewma is None else float(ewma)

    async def handle_time_spread(self) -> float | None:
        with redis_errors("HGET"):
            spread = await self._r.hget(self._stats, "spread")
        return None if spread is None else float(spread)

    async def version(self) -> int:
        with redis_errors("GET"):
            value = await self._r.get(self._version)
        return 0 if value is None else int(value)
