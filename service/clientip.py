"""The client's address: the socket peer, or X-Forwarded-For when the peer is a trusted proxy."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from starlette.requests import HTTPConnection
from starlette.types import Scope

from service.settings_types import Network

_STATE_KEY = "kervan_client_ip"


def _parse(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


def _trusted(
    addr: ipaddress.IPv4Address | ipaddress.IPv6Address | None, proxies: Sequence[Network]
) -> bool:
    return addr is not None and any(addr in net for net in proxies)


def resolve_client_ip(scope: Scope, trusted_proxies: Sequence[Network]) -> str:
    """Walk X-Forwarded-For from the right, skipping trusted proxies; the first untrusted hop
    is the client. Spoofed entries to the left of it are ignored."""
    peer = scope.get("client")
    peer_ip = peer[0] if peer else "0.0.0.0"  # noqa: S104 - a placeholder, never bound
    if not trusted_proxies or not _trusted(_parse(peer_ip), trusted_proxies):
        return peer_ip
    forwarded: list[str] = []
    for name, value in scope.get("headers", ()):
        if name == b"x-forwarded-for":
            forwarded.extend(part.strip() for part in value.decode("latin-1").split(","))
    for hop in reversed(forwarded):
        addr = _parse(hop)
        if addr is None:
            break
        if not _trusted(addr, trusted_proxies):
            return str(addr)
    return peer_ip


def client_ip(conn: HTTPConnection) -> str:
    """The client IP that edge (``service/edge.py``) resolved for this request."""
    state = conn.scope.get("state") or {}
    found = state.get(_STATE_KEY)
    if isinstance(found, str):
        return found
    peer = conn.scope.get("client")
    return peer[0] if peer else "0.0.0.0"  # noqa: S104
