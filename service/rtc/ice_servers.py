"""The ICE servers a caller gets for a call: the configured STUN/TURN servers, lowest priority
number first, the TURN ones with a credential minted for this caller.

The list is what ``RTCPeerConnection``'s ``iceServers`` takes as is (``region`` and
``priority`` are extra members browsers ignore). STUN entries carry no ``username`` or
``credential`` at all: a browser would turn a JSON ``null`` into the string ``"null"``.
"""

from __future__ import annotations

import math
from typing import Any

from core.rtc.turn import mint_credential
from service.rtc.settings import RtcSettings


def ice_servers_answer(settings: RtcSettings, user_id: str, *, now: float) -> dict[str, Any]:
    """``{"ice_servers": [...], "ttl_seconds": N, "expires_at": unix}`` for ``user_id``."""
    ttl = settings.rtc_turn_ttl_seconds
    expires_at = math.floor(now) + ttl
    servers = sorted(settings.rtc_ice_servers, key=lambda server: server.priority)
    secrets = settings.rtc_turn_secret_values
    # One credential for every TURN entry: the regions' servers share the secrets.
    credential = (
        mint_credential(secrets[0], user_id, now=now, ttl=ttl)
        if secrets and any(server.is_turn for server in servers)
        else None
    )
    answer: list[dict[str, Any]] = []
    for server in servers:
        entry: dict[str, Any] = {"urls": list(server.urls)}
        if server.is_turn and credential is not None:
            entry["username"] = credential.username
            entry["credential"] = credential.credential
        entry["region"] = server.region
        entry["priority"] = server.priority
        answer.append(entry)
    return {"ice_servers": answer, "ttl_seconds": ttl, "expires_at": expires_at}
