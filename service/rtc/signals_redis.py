"""The call signaling store on Redis (scaled mode), shared by every process.

A call is a hash (``{rtc:<room>}:call:<call>``: members, state, times and per member the last
uplink sequence taken, the last downlink one handed out and the acknowledged one) and one outbox
hash per member (``{rtc:<room>}:out:<call>:<person>``: downlink sequence -> payload). Taking a
message is one script (``rtc_signal.lua``), so the order check, the outbox's bound and the state
change see one state. The ringing and active indexes are sorted sets of their own, updated after
the script by separate commands: the sweep repairs them (a call that ended or expired is dropped).
"""

from __future__ import annotations

from typing import Any

from service.backends import Backends
from service.backends.errors import redis_errors
from service.backends.keys import RTC_ACTIVE, RTC_RINGING, RTC_TAG
from service.backends.lua import LuaScript
from service.rtc.signals import (
    CallInfo,
    CallState,
    Signal,
    SignalOutcome,
    SignalStatus,
    index_member,
    split_member,
)


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisSignalStore:
    kind = "redis"

    def __init__(self, backends: Backends) -> None:
        if backends.redis is None:
            raise ValueError("RedisSignalStore needs Redis backends")
        self._r: Any = backends.redis
        self._key = backends.key
        self._signal = LuaScript(backends.redis, "rtc_signal")
        self._ack = LuaScript(backends.redis, "rtc_ack")
        self._end = LuaScript(backends.redis, "rtc_end")
        self._ringing = self._key(RTC_RINGING)
        self._active = self._key(RTC_ACTIVE)

    def _call_key(self, room: str, call: str) -> str:
        return self._key(f"{{{RTC_TAG}:{room}}}", "call", call)

    def _outbox(self, room: str, call: str, person: str) -> str:
        return self._key(f"{{{RTC_TAG}:{room}}}", "out", call, person)

    def _current(self, room: str) -> str:
        return self._key(f"{{{RTC_TAG}:{room}}}", "current")

    async def signal(
        self, message: Signal, *, capacity: int, ttl: float, now: float, ring: float
    ) -> SignalOutcome:
        m = message
        reply = await self._signal(
            keys=[
                self._call_key(m.room, m.call),
                self._outbox(m.room, m.call, m.recipient),
                self._current(m.room),
            ],
            args=[
                m.kind,
                m.sender,
                m.recipient,
                m.seq,
                m.payload,
                1 if m.relay else 0,
                capacity,
                _ms(ttl),
                repr(now),
                m.call,
                m.room,
                m.media,
                1 if m.connected else 0,
                m.reason,
            ],
        )
        status: SignalStatus = _text(reply[0])  # type: ignore[assignment]
        outcome = SignalOutcome(
            status,
            int(reply[1]),
            int(reply[2]),
            _text(reply[3]),
            bool(int(reply[4])),
            bool(int(reply[5])),
        )
        member = index_member(m.room, m.call)
        with redis_errors("rtc call index"):
            if outcome.created:
                async with self._r.pipeline(transaction=False) as pipe:
                    pipe.zadd(self._ringing, {member: now + ring})
                    pipe.zadd(self._active, {member: now})
                    await pipe.execute()
            if outcome.ended:
                await self.forget(m.room, m.call)
            elif outcome.status == "accepted" and m.kind == "call:accept":
                await self._r.zrem(self._ringing, member)
        return outcome

    async def ack(
        self, room: str, call: str, person: str, cumulative: int, sacks: list[int]
    ) -> int:
        acked = await self._ack(
            keys=[self._call_key(room, call), self._outbox(room, call, person)],
            args=[person, cumulative, *sacks],
        )
        return int(acked)

    async def pending(
        self, room: str, call: str, person: str, after: int
    ) -> list[tuple[int, bytes]]:
        with redis_errors("rtc outbox"):
            raw = await self._r.hgetall(self._outbox(room, call, person))
        found = ((int(seq), bytes(payload)) for seq, payload in raw.items())
        return sorted(entry for entry in found if entry[0] > after)

    async def info(self, room: str, call: str) -> CallInfo | None:
        with redis_errors("rtc call"):
            raw = await self._r.hgetall(self._call_key(room, call))
        if not raw or b"state" not in raw:
            return None
        fields = {_text(k): _text(v) for k, v in raw.items()}

        def per(prefix: str) -> dict[str, int]:
            return {k[len(prefix) :]: int(v) for k, v in fields.items() if k.startswith(prefix)}

        def at(name: str) -> float | None:
            value = fields.get(name)
            return None if value is None else float(value)

        state: CallState = fields["state"]  # type: ignore[assignment]
        return CallInfo(
            room=room,
            call=call,
            caller=fields["caller"],
            callee=fields["callee"],
            media=fields.get("media", "audio"),
            state=state,
            started=float(fields["started"]),
            accepted=at("accepted"),
            ended=at("ended"),
            reason=fields.get("reason"),
            connected=fields.get("connected") == "1",
            received=per("in:"),
            sent=per("out:"),
            acked=per("ack:"),
        )

    async def current(self, room: str) -> str | None:
        with redis_errors("rtc current call"):
            found = await self._r.get(self._current(room))
        return None if found is None else _text(found)

    async def end(
        self,
        room: str,
        call: str,
        *,
        reason: str,
        payload: bytes,
        now: float,
        ttl: float,
        only_if: CallState | None = None,
    ) -> dict[str, int] | None:
        info = await self.info(room, call)
        if info is None:
            return None
        reply = await self._end(
            keys=[
                self._call_key(room, call),
                self._outbox(room, call, info.caller),
                self._outbox(room, call, info.callee),
                self._current(room),
            ],
            args=[reason, payload, repr(now), _ms(ttl), call, only_if or ""],
        )
        if not reply:
            return None
        await self.forget(room, call)
        return {_text(reply[0]): int(reply[1]), _text(reply[2]): int(reply[3])}

    async def ringing_due(self, now: float, limit: int = 100) -> list[tuple[str, str]]:
        with redis_errors("rtc ringing index"):
            due = await self._r.zrangebyscore(self._ringing, "-inf", now, start=0, num=limit)
        return [split_member(_text(member)) for member in due]

    async def forget(self, room: str, call: str) -> None:
        member = index_member(room, call)
        with redis_errors("rtc call index"):
            async with self._r.pipeline(transaction=False) as pipe:
                pipe.zrem(self._ringing, member)
                pipe.zrem(self._active, member)
                await pipe.execute()

    async def active(self, now: float, ttl: float) -> int:
        with redis_errors("rtc active index"):
            async with self._r.pipeline(transaction=False) as pipe:
                pipe.zremrangebyscore(self._active, "-inf", now - ttl)
                pipe.zcard(self._active)
                _, count = await pipe.execute()
        return int(count)
