"""The client side of call signaling, as a browser's support widget does it, for the tests.

``CallSide`` numbers what it sends in a call, keeps it until the server acknowledges it (and
sends it again after a resume when the server had not taken it), delivers the server's relayed
frames in order and once (duplicates dropped by ``seq``), and acknowledges them. ``negotiate``
runs a whole WebRTC negotiation between two aiortc peers through ``/ws/support``: the offer and
answer without candidates, every candidate trickled in an ``rtc:ice:candidate`` frame, and the
end of candidates as ``candidate: null``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiortc import RTCSessionDescription
from aiortc.sdp import candidate_from_sdp

from tests.rtc.peers import Peer
from tests.support.wsclient import Client

WAIT = 30.0


@dataclass
class CallSide:
    client: Client
    call: str
    room: str
    next_seq: int = 1
    delivered: int = 0
    unacked: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: Relayed frames delivered in order, as the application saw them.
    log: list[dict[str, Any]] = field(default_factory=list)

    async def send(self, kind: str, **fields: Any) -> int:
        seq = self.next_seq
        self.next_seq += 1
        message = {"type": kind, "call": self.call, "seq": seq, **fields}
        self.unacked[seq] = message
        await self.client.send(message)
        return seq

    async def _raw(self, timeout: float) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.client.socket.recv(), timeout)
        data: dict[str, Any] = orjson.loads(raw)
        if data["type"] == "ping":
            await self.client.send({"type": "pong"})
        return data

    async def _handle(self, data: dict[str, Any]) -> dict[str, Any] | None:
        """A relayed frame to deliver, or None (bookkeeping only)."""
        kind = data["type"]
        if data.get("call") != self.call:
            return None
        if kind == "rtc:ack":
            # Only the cumulative ack lets a frame go: ``sack`` is advisory.
            for seq in [s for s in self.unacked if s <= data["ack"]]:
                del self.unacked[seq]
            return None
        if kind == "rtc:resumed":
            for seq in sorted(self.unacked):
                if seq > data["received"]:
                    await self.client.send(self.unacked[seq])
            return None
        if kind == "error":
            raise AssertionError(f"error frame in call {self.call}: {data}")
        seq = data["seq"]
        if seq <= self.delivered:
            await self.ack()  # a resend: the server lost our ack
            return None
        assert seq == self.delivered + 1, f"out of order: {seq} after {self.delivered}"
        self.delivered = seq
        self.log.append(data)
        await self.ack()
        return data

    async def ack(self) -> None:
        await self.client.send({"type": "rtc:ack", "call": self.call, "ack": self.delivered})

    async def next(self, *, timeout: float = WAIT) -> dict[str, Any]:
        """The next relayed frame of the call, in order."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"nothing relayed in call {self.call} within {timeout}s")
            try:
                data = await self._raw(left)
            except TimeoutError:
                continue
            if data.get("call") != self.call and data.get("details", {}) != {"call": self.call}:
                continue
            found = await self._handle(data)
            if found is not None:
                return found

    async def until(self, kind: str, *, timeout: float = WAIT) -> dict[str, Any]:
        """Deliver relayed frames until one of ``kind``; that one."""
        while True:
            found = await self.next(timeout=timeout)
            if found["type"] == kind:
                return found

    async def settle(self, *, timeout: float = WAIT) -> None:
        """Wait until the server acknowledged everything sent."""
        deadline = time.monotonic() + timeout
        while self.unacked:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"not acknowledged: {sorted(self.unacked)}")
            try:
                await self._handle(await self._raw(left))
            except TimeoutError:
                continue

    def moved_to(self, client: Client) -> None:
        """The connection was replaced (a resume with ``hello.calls``)."""
        self.client = client

    def position(self) -> dict[str, Any]:
        """This call's entry in a resuming ``hello.calls``."""
        return {self.call: {"room": self.room, "delivered": self.delivered}}


def split_sdp(sdp: str) -> tuple[str, list[dict[str, Any]]]:
    """A description without its candidates, and the candidates as RTCIceCandidateInit."""
    kept: list[str] = []
    candidates: list[dict[str, Any]] = []
    mid: str | None = None
    index = -1
    for line in sdp.splitlines():
        if line.startswith("m="):
            index += 1
        elif line.startswith("a=mid:"):
            mid = line.removeprefix("a=mid:")
        if line.startswith("a=candidate:"):
            candidates.append(
                {"candidate": line.removeprefix("a="), "sdpMid": mid, "sdpMLineIndex": index}
            )
            continue
        if line.startswith("a=end-of-candidates"):
            continue
        kept.append(line)
    return "\r\n".join(kept) + "\r\n", candidates


async def send_description(side: CallSide, description: RTCSessionDescription) -> int:
    """The description, then each candidate, then the end of candidates; the number of
    candidates sent."""
    sdp, candidates = split_sdp(description.sdp)
    await side.send("rtc:description", description={"type": description.type, "sdp": sdp})
    for candidate in candidates:
        await side.send("rtc:ice:candidate", candidate=candidate)
    await side.send("rtc:ice:candidate", candidate=None)
    return len(candidates)


async def take_description(side: CallSide, peer: Peer, *, answer: bool) -> int:
    """Apply the peer's relayed description and every trickled candidate up to the end of
    candidates; answer it when ``answer``. The number of candidates taken."""
    described = await side.until("rtc:description")
    remote = RTCSessionDescription(
        sdp=described["description"]["sdp"], type=described["description"]["type"]
    )
    await peer.pc.setRemoteDescription(remote)
    taken = 0
    while True:
        found = await side.until("rtc:ice:candidate")
        init = found["candidate"]
        if init is None:
            await peer.pc.addIceCandidate(None)
            break
        candidate = candidate_from_sdp(init["candidate"].removeprefix("candidate:"))
        candidate.sdpMid = init["sdpMid"]
        candidate.sdpMLineIndex = init["sdpMLineIndex"]
        await peer.pc.addIceCandidate(candidate)
        taken += 1
    if answer:
        await peer.pc.setLocalDescription(await peer.pc.createAnswer())
    return taken
