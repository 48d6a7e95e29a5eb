"""aiortc peers for the WebRTC tests: built from a ``GET /rtc/ice-servers`` answer, relay only.

A ``Peer`` is one ``RTCPeerConnection`` with one data channel and a queue of what arrives on it.
How the two peers exchange their descriptions is the test's business: directly
(``exchange(offerer, answerer)``), or through the signaling relay of ``/ws/support``
(``offer()`` / ``answer(offer)`` / ``accept(answer)`` with ``as_dict``/``from_dict`` to put a
description in a frame and take it out again).

Relay only: the configuration sets ``iceTransportPolicy=relay`` (aiortc >= 1.10 passes it to
aioice's ``TransportPolicy.RELAY``), so a peer gathers no host or server-reflexive candidates,
only the relayed address its TURN allocation gives, and checks pairs of relayed candidates only.
A peer therefore connects only through the TURN server, with the credentials it was given;
on this loopback-only machine that is also the only way (aioice leaves 127.0.0.1 out of host
candidates). aiortc uses the *first* ``turn:`` URL of the list (and at most one STUN URL,
unused with relay), so put the server under test first: ``/rtc/ice-servers`` orders by priority.

aiortc gathers every candidate while setting the local description (no trickle), so an offer
or answer carries all the peer's candidates and an ``a=end-of-candidates`` line.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import httpx
from aiortc import (
    RTCConfiguration,
    RTCDataChannel,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
    RTCSessionDescription,
)

#: Long enough for a relayed connection on a loaded CI machine; a wait is bounded by it, it is
#: never what a test measures.
WAIT_SECONDS = 30.0
CHANNEL_LABEL = "kervan-test"
FINAL_STATES = frozenset({"connected", "failed", "closed"})


async def fetch_ice_servers(base_url: str, bearer: str) -> dict[str, Any]:
    """``GET /rtc/ice-servers`` with ``Authorization: Bearer`` (an admin session token or the
    API key, or a customer's resume token); the answer, asserted 200."""
    async with httpx.AsyncClient(base_url=base_url, timeout=WAIT_SECONDS) as client:
        response = await client.get(
            "/rtc/ice-servers", headers={"Authorization": f"Bearer {bearer}"}
        )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def ice_servers_of(answer: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> list[RTCIceServer]:
    """aiortc's ``RTCIceServer`` list from an ``/rtc/ice-servers`` answer (or its
    ``ice_servers`` list): the members ``RTCPeerConnection`` knows, the others dropped."""
    entries = answer["ice_servers"] if isinstance(answer, Mapping) else answer
    return [
        RTCIceServer(
            urls=list(entry["urls"]),
            username=entry.get("username"),
            credential=entry.get("credential"),
        )
        for entry in entries
    ]


def relay_only(answer: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> RTCConfiguration:
    """The configuration of a peer that may only use relayed (TURN) candidates."""
    return RTCConfiguration(
        iceServers=ice_servers_of(answer), iceTransportPolicy=RTCIceTransportPolicy.RELAY
    )


def as_dict(description: RTCSessionDescription) -> dict[str, str]:
    """A session description as JSON-ready ``{"type", "sdp"}`` (what browsers send too)."""
    return {"type": description.type, "sdp": description.sdp}


def from_dict(data: Mapping[str, Any]) -> RTCSessionDescription:
    return RTCSessionDescription(sdp=str(data["sdp"]), type=str(data["type"]))


def candidate_types(sdp: str) -> list[str]:
    """The ``typ`` of every ``a=candidate`` line of a description (``host``, ``relay``, ...)."""
    found: list[str] = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            fields = line.split()
            found.append(fields[fields.index("typ") + 1])
    return found


class Peer:
    """One relay-only peer connection with a data channel; ``async with`` closes it."""

    def __init__(self, answer: Mapping[str, Any] | Sequence[Mapping[str, Any]], name: str) -> None:
        self.name = name
        self.pc = RTCPeerConnection(configuration=relay_only(answer))
        self.channel: RTCDataChannel | None = None
        self.messages: asyncio.Queue[str | bytes] = asyncio.Queue()
        self._changed = asyncio.Event()
        self._channel_open = asyncio.Event()
        self.pc.on("connectionstatechange", self._changed.set)
        self.pc.on("datachannel", self._adopt)

    async def __aenter__(self) -> Peer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"Peer({self.name}, {self.pc.connectionState})"

    # --- the channel -----------------------------------------------------------------------
    def _adopt(self, channel: RTCDataChannel) -> None:
        self.channel = channel
        channel.on("message", self.messages.put_nowait)
        channel.on("open", self._channel_open.set)
        if channel.readyState == "open":
            self._channel_open.set()

    def open_channel(self, label: str = CHANNEL_LABEL) -> RTCDataChannel:
        """The offerer's data channel (create it before ``offer()``); the answerer adopts it."""
        channel = self.pc.createDataChannel(label)
        self._adopt(channel)
        return channel

    async def send(self, message: str | bytes, *, timeout: float = WAIT_SECONDS) -> None:
        """Send on the data channel once it is open (bounded wait)."""
        await asyncio.wait_for(self._channel_open.wait(), timeout)
        assert self.channel is not None
        self.channel.send(message)

    async def receive(self, *, timeout: float = WAIT_SECONDS) -> str | bytes:
        """The next message from the data channel; ``AssertionError`` when none comes in time."""
        try:
            return await asyncio.wait_for(self.messages.get(), timeout)
        except TimeoutError:
            raise AssertionError(
                f"{self.name}: no data-channel message within {timeout}s "
                f"(connection {self.pc.connectionState})"
            ) from None

    # --- negotiation -----------------------------------------------------------------------
    async def offer(self) -> RTCSessionDescription:
        """Create and set the local offer; it carries every candidate gathered."""
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription

    async def answer(self, offer: RTCSessionDescription) -> RTCSessionDescription:
        """Take the remote offer, create and set the local answer."""
        await self.pc.setRemoteDescription(offer)
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        return self.pc.localDescription

    async def accept(self, answer: RTCSessionDescription) -> None:
        """Take the remote answer (the offerer's last step)."""
        await self.pc.setRemoteDescription(answer)

    def local_candidate_types(self) -> list[str]:
        description = self.pc.localDescription
        return candidate_types(description.sdp) if description is not None else []

    # --- states ----------------------------------------------------------------------------
    async def settled(
        self, states: Iterable[str] = FINAL_STATES, *, timeout: float = WAIT_SECONDS
    ) -> str:
        """Wait until ``connectionState`` is one of ``states``; that state. ``AssertionError``
        naming the state it is stuck in when none is reached in time."""
        wanted = set(states)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.pc.connectionState not in wanted:
            self._changed.clear()
            if self.pc.connectionState in wanted:
                break
            left = deadline - loop.time()
            if left <= 0:
                raise AssertionError(
                    f"{self.name}: connection {self.pc.connectionState}, not {sorted(wanted)} "
                    f"within {timeout}s"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)
        state: str = self.pc.connectionState
        return state

    async def connected(self, *, timeout: float = WAIT_SECONDS) -> None:
        """Wait for ``connected``; ``AssertionError`` when the connection fails or stalls."""
        state = await self.settled(timeout=timeout)
        assert state == "connected", f"{self.name}: connection {state}"

    async def close(self) -> None:
        await self.pc.close()


async def exchange(offerer: Peer, answerer: Peer) -> None:
    """Negotiate two peers of one process directly (no signaling server): the offerer opens
    the data channel, offers, the answerer answers, the offerer accepts."""
    if offerer.channel is None:
        offerer.open_channel()
    offer = await offerer.offer()
    answer = await answerer.answer(from_dict(as_dict(offer)))
    await offerer.accept(from_dict(as_dict(answer)))
