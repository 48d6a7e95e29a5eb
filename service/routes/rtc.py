"""``GET /rtc/ice-servers``: the STUN/TURN servers for a WebRTC call, with a TURN credential
that expires (``service/rtc/ice_servers.py``; the scheme is ``core/rtc/turn.py``).

For the two sides of a support call only: an admin (session cookie or token, or the API key) or
a customer in a support room, who presents the resume token its ``/ws/support`` welcome gave it
as ``Authorization: Bearer``. The TURN username names the caller by its support person id
(``cu_...`` or ``ad_<admin id>``), so the TURN servers' logs say whose call used the relay.
"""

from __future__ import annotations

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from service.auth import admin_from_connection
from service.endpoint import api
from service.errors import ApiError
from service.responses import json_response
from service.rtc.ice_servers import ice_servers_answer
from service.runtime import get_runtime
from service.support.desk import SupportDesk
from service.support.people import admin_person_id

NO_STORE = {"Cache-Control": "no-store"}
UNAUTHORIZED = (
    "No valid credentials: an admin session or API key, or the resume token of a support "
    "customer as Authorization: Bearer"
)
NOT_IN_ROOM = "The customer is not in a support room (waiting, or the chat has ended)"


class IceServerOut(BaseModel):
    urls: list[str] = Field(description="stun:, stuns:, turn: or turns: URLs")
    username: str | None = Field(
        default=None,
        description="`<expiry unix time>:<person id>`; TURN entries only (absent on STUN ones)",
    )
    credential: str | None = Field(
        default=None,
        description="base64(HMAC-SHA1(shared secret, username)); TURN entries only",
    )
    region: str
    priority: int = Field(description="Lower first; the list is sorted by it")


class IceServersOut(BaseModel):
    ice_servers: list[IceServerOut] = Field(
        description="Usable as RTCPeerConnection's iceServers, lowest priority number first"
    )
    ttl_seconds: int = Field(description="Lifetime of the TURN credentials")
    expires_at: int = Field(description="Unix time the TURN credentials expire (fetch anew)")


def _bearer(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def _caller_id(request: Request) -> str:
    """The support person id of the caller: an admin, or a customer in a room."""
    principal = await admin_from_connection(request, None)
    if principal is not None:
        # As /ws/support names admins: the account id, or the API key's principal id.
        admin = str(principal.admin_id) if principal.admin_id is not None else principal.id
        return admin_person_id(admin)
    token = _bearer(request)
    desk = get_runtime(request).facility(SupportDesk)
    person = None
    if token is not None:
        person = await desk.people.resume_customer(token, name=None, language=None)
    if person is None:
        raise ApiError(
            401,
            "unauthorized",
            UNAUTHORIZED,
            headers={"WWW-Authenticate": 'Bearer realm="kervan-rtc"'},
        )
    if await desk.queue.assignment_of_customer(person.id) is None:
        raise ApiError(
            403,
            "not_in_room",
            "TURN credentials are for customers in a support room; this customer is not "
            "in one (waiting, or the chat has ended)",
        )
    return person.id


@api(
    "ICE servers for a support call, lowest priority number first, TURN ones with a "
    "short-lived credential (admins, and customers in a support room by resume token)",
    response=IceServersOut,
    tags=["rtc", "support"],
    responses={401: UNAUTHORIZED, 403: NOT_IN_ROOM},
)
async def ice_servers(request: Request) -> Response:
    runtime = get_runtime(request)
    caller = await _caller_id(request)
    answer = ice_servers_answer(runtime.settings, caller, now=runtime.clock.now())
    return json_response(answer, headers=NO_STORE)


routes: list[BaseRoute] = [
    Route("/rtc/ice-servers", ice_servers, methods=["GET"]),
]
