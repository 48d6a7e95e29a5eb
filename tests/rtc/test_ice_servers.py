"""``GET /rtc/ice-servers`` on a served app: who gets ICE servers and TURN credentials, in what
order, and who is refused (embedded backends and the real Redis)."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx

from core.rtc.turn import Accepted, verify_credential
from service.support.desk import SupportDesk
from tests.rtc.rooms import http_url, in_a_room
from tests.support.wsclient import Desk, admin_token

Serve = Callable[..., AbstractAsyncContextManager[Desk]]
API_KEY = "test-admin-key"  # make_settings' admin key
CURRENT = "rtc-current-secret-0123456789"
PREVIOUS = "rtc-previous-secret-012345678"
SERVERS = [
    {"urls": ["stun:stun.example.com:3478"], "region": "eu", "priority": 20},
    {
        "urls": [
            "turn:turn-eu.example.com:3478?transport=udp",
            "turns:turn-eu.example.com:5349?transport=tcp",
        ],
        "region": "eu",
        "priority": 10,
    },
    {"urls": ["turn:turn-us.example.com:3478?transport=udp"], "region": "us", "priority": 10},
    {"urls": ["stun:stun-asia.example.com"], "region": "asia", "priority": 1},
]
RTC = {
    "rtc_ice_servers": SERVERS,
    "rtc_turn_secrets": f"{CURRENT},{PREVIOUS}",
    "rtc_turn_ttl_seconds": 1800,
}


async def _get(desk: Desk, headers: dict[str, str] | None = None) -> httpx.Response:
    async with httpx.AsyncClient(base_url=http_url(desk), timeout=10) as client:
        return await client.get("/rtc/ice-servers", headers=headers)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _assert_granted(response: httpx.Response, person: str, before: int) -> dict[str, Any]:
    """A 200 with TURN credentials for ``person`` and the no-store header; the body."""
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    assert set(body) == {"ice_servers", "ttl_seconds", "expires_at"}
    assert body["ttl_seconds"] == 1800
    assert before + 1800 <= body["expires_at"] <= int(time.time()) + 1800
    servers = body["ice_servers"]
    # Lowest priority number first; equal ones in the configured order.
    assert [(s["region"], s["priority"]) for s in servers] == [
        ("asia", 1),
        ("eu", 10),
        ("us", 10),
        ("eu", 20),
    ]
    assert servers[1]["urls"] == SERVERS[1]["urls"]
    for entry in servers:
        if entry["urls"][0].startswith("stun:"):
            assert set(entry) == {"urls", "region", "priority"}, entry
            continue
        assert entry["username"] == f"{body['expires_at']}:{person}"
        verdict = verify_credential(
            entry["username"], entry["credential"], [CURRENT, PREVIOUS], now=time.time()
        )
        assert verdict == Accepted(person, body["expires_at"], 0)  # the first secret signs
    return body


def _assert_refused(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code and body["error"]["message"]
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Bearer ")


async def test_admins_get_credentials_by_session_cookie_or_api_key(serve_desk: Serve) -> None:
    async with serve_desk(**RTC) as desk:
        token = await admin_token(desk.runtime, "mert")
        async with desk.admin(token) as admin:
            person = str(admin.welcome["person"])  # the admin as /ws/support names it
        assert person.startswith("ad_")
        before = int(time.time())
        _assert_granted(await _get(desk, _bearer(token)), person, before)
        cookie = {"Cookie": f"kervan_admin={token}"}
        _assert_granted(await _get(desk, cookie), person, before)
        _assert_granted(await _get(desk, {"X-API-Key": API_KEY}), "ad_api-key", before)
        _assert_granted(await _get(desk, _bearer(API_KEY)), "ad_api-key", before)


async def test_a_customer_in_a_room_gets_credentials_by_resume_token(serve_desk: Serve) -> None:
    async with serve_desk(**RTC) as desk, in_a_room(desk) as room:
        before = int(time.time())
        body = _assert_granted(await _get(desk, _bearer(room.resume_token)), room.room, before)
        assert room.customer_id == room.room and room.room.startswith("cu_")
        # The admin of the same room is named differently: its TURN sessions are its own.
        admin_body = _assert_granted(
            await _get(desk, _bearer(room.admin_token)), room.admin_id, before
        )
        assert admin_body["ice_servers"][1]["username"] != body["ice_servers"][1]["username"]


async def test_a_customer_outside_a_room_is_forbidden(serve_desk: Serve) -> None:
    async with serve_desk(**RTC) as desk:
        async with desk.customer("Hans", language="de") as lonely:
            resume = _bearer(str(lonely.welcome["resume"]))
            _assert_refused(await _get(desk, resume), 403, "not_in_room")  # never queued
            await lonely.send({"type": "queue:join"})
            await lonely.expect("queue:joined")
            _assert_refused(await _get(desk, resume), 403, "not_in_room")  # still waiting
            await lonely.send({"type": "queue:leave"})
            await lonely.expect("queue:left")
        async with in_a_room(desk) as room:
            resume = _bearer(room.resume_token)
            assert (await _get(desk, resume)).status_code == 200
            await room.admin.send({"type": "chat:end", "room": room.room})
            await room.customer.expect("room:closed", room=room.room)
            desk_of = desk.runtime.facility(SupportDesk)
            assert await desk_of.queue.assignment_of_customer(room.room) is None
            _assert_refused(await _get(desk, resume), 403, "not_in_room")  # the chat ended


async def test_no_or_wrong_credentials_are_unauthorized(serve_desk: Serve) -> None:
    async with serve_desk(**RTC) as desk:
        for headers in (
            None,
            _bearer("x" * 43),  # no admin session, no customer
            _bearer(API_KEY[:-1]),
            {"Authorization": "Basic " + "x" * 20},
            {"Authorization": "Bearer"},
            {"X-API-Key": API_KEY + "0"},
            {"Cookie": "kervan_admin=" + "x" * 43},
        ):
            _assert_refused(await _get(desk, headers), 401, "unauthorized")


async def test_without_configured_servers_the_list_is_empty(serve_desk: Serve) -> None:
    async with serve_desk() as desk:
        response = await _get(desk, {"X-API-Key": API_KEY})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["ice_servers"] == [] and body["ttl_seconds"] == 3600


async def test_the_route_is_documented(serve_desk: Serve) -> None:
    async with serve_desk() as desk, httpx.AsyncClient(base_url=http_url(desk)) as client:
        document = (await client.get("/openapi.json")).json()
    operation = document["paths"]["/rtc/ice-servers"]["get"]
    assert set(operation["responses"]) >= {"200", "401", "403"}
    assert "lowest priority number first" in operation["summary"]
    schema = document["components"]["schemas"]["IceServersOut"]
    assert set(schema["properties"]) == {"ice_servers", "ttl_seconds", "expires_at"}
