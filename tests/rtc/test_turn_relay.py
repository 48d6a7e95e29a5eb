"""Real calls through a real coturn: two aiortc peers, relay candidates only, credentials from
``GET /rtc/ice-servers``.

The peers exchange their descriptions directly here (the signaling relay has its own tests);
what is under test is that the credentials kervan mints are the ones coturn accepts: a call with
them connects and carries data-channel messages, one with an expired credential or one signed by
a secret coturn does not know never connects.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from core.clock import ManualClock
from service.settings import Settings
from tests.conftest import running_client
from tests.rtc.coturn import Coturn
from tests.rtc.peers import Peer, exchange, fetch_ice_servers
from tests.rtc.rooms import in_a_room
from tests.support.wsclient import Desk

ServeRelay = Callable[..., AbstractAsyncContextManager[Desk]]
API_KEY = "test-admin-key"  # make_settings' admin key
#: A failing connection is awaited within this bound; it fails as soon as ICE finds no pair.
FAILURE_WAIT_SECONDS = 30.0


def _uses(coturn: Coturn, answer: dict[str, Any]) -> None:
    """The answer names this coturn first, with a credential for it."""
    first = answer["ice_servers"][0]
    assert first["urls"][0] == coturn.url("udp")
    assert re.fullmatch(r"[0-9]+:(cu|ad)_[A-Za-z0-9_-]+", first["username"]), first
    assert first["credential"]


@pytest.mark.parametrize("signing", ["current", "previous"])
async def test_a_call_relayed_by_coturn_connects_and_carries_messages(
    serve_relay_desk: ServeRelay, coturn: Coturn, signing: str
) -> None:
    # "previous": kervan signs with the secret coturn lists second, as during a rotation.
    order = coturn.secrets if signing == "current" else coturn.secrets[::-1]
    async with (
        serve_relay_desk(rtc_turn_secrets=",".join(order)) as desk,
        in_a_room(desk) as room,
    ):
        admin_answer = await fetch_ice_servers(room.http_url, room.admin_token)
        customer_answer = await fetch_ice_servers(room.http_url, room.resume_token)
        _uses(coturn, admin_answer)
        _uses(coturn, customer_answer)
        async with Peer(admin_answer, "admin") as admin, Peer(customer_answer, "customer") as cust:
            await exchange(admin, cust)
            # Only relayed candidates were gathered, so only coturn can carry the call.
            assert admin.local_candidate_types() and cust.local_candidate_types()
            assert set(admin.local_candidate_types() + cust.local_candidate_types()) == {"relay"}
            await asyncio.gather(admin.connected(), cust.connected())
            await admin.send("merhaba")
            assert await cust.receive() == "merhaba"
            await cust.send(b"\x00hallo\xff")
            assert await admin.receive() == b"\x00hallo\xff"


async def _answer(settings: Settings, clock: ManualClock) -> dict[str, Any]:
    """``/rtc/ice-servers`` of an in-process app with ``settings``, asked with the API key."""
    async with running_client(settings, clock=clock) as client:
        response = await client.get("/rtc/ice-servers", headers={"X-API-Key": API_KEY})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


@pytest.mark.parametrize("fault", ["expired", "unknown_secret"])
async def test_a_call_with_a_bad_credential_does_not_connect(
    make_settings: Callable[..., Settings], coturn: Coturn, fault: str, tmp_path: Any
) -> None:
    now = time.time()
    good_settings = make_settings(
        **coturn.settings(), database_url=f"sqlite+aiosqlite:///{tmp_path / 'good.db'}"
    )
    good = await _answer(good_settings, ManualClock(now))
    if fault == "expired":
        # The same app, its clock two TTLs back: the credential expired an hour ago.
        bad = await _answer(good_settings, ManualClock(now - 2 * 3600))
        assert bad["expires_at"] < now
    else:
        # An app that signs with a secret coturn was never given.
        stranger = make_settings(
            **coturn.settings(rtc_turn_secrets="not-a-secret-coturn-knows-0123"),
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'stranger.db'}",
        )
        bad = await _answer(stranger, ManualClock(now))
    _uses(coturn, bad)
    async with Peer(good, "good") as caller, Peer(bad, "bad") as callee:
        await exchange(caller, callee)
        # coturn refused the bad side's allocation: it has no candidate at all, so no pair
        # exists. The good side's ICE fails at once; aiortc never starts ICE without a local
        # candidate, so the bad side stays "new" (a browser reports "failed" after its ICE
        # timeout). Neither ever connects.
        assert callee.local_candidate_types() == []
        assert caller.local_candidate_types() == ["relay"]
        assert await caller.settled(timeout=FAILURE_WAIT_SECONDS) == "failed"
        assert callee.pc.connectionState == "new"
        assert caller.channel is not None and caller.channel.readyState == "connecting"
        assert caller.messages.empty() and callee.messages.empty()
