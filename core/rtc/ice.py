"""ICE server URLs (RFC 7064 ``stun:``/``stuns:``, RFC 7065 ``turn:``/``turns:``), checked the way
browsers and aiortc read them, so a configured URL is one every client can use.

``stun:host[:port]``, ``turn:host[:port][?transport=udp|tcp]``; the host is a DNS name, an IPv4
address or a bracketed IPv6 address. No ``//``, user info, path or other query.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Literal

Scheme = Literal["stun", "stuns", "turn", "turns"]
Transport = Literal["udp", "tcp"]
SCHEMES: tuple[Scheme, ...] = ("stun", "stuns", "turn", "turns")
TRANSPORTS: tuple[Transport, ...] = ("udp", "tcp")
MAX_URL_LENGTH = 256
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_PORT = re.compile(r"^[0-9]{1,5}$")
_SCHEMES: dict[str, Scheme] = {scheme: scheme for scheme in SCHEMES}


@dataclass(frozen=True, slots=True)
class IceUrl:
    scheme: Scheme
    host: str
    #: None: the scheme's default (3478, or 5349 for stuns/turns).
    port: int | None
    #: None for STUN URLs, and for TURN URLs without ``?transport=`` (the client picks).
    transport: Transport | None

    @property
    def is_turn(self) -> bool:
        """TURN URLs need credentials; STUN ones take none."""
        return self.scheme in ("turn", "turns")


def _check_host(host: str) -> None:
    if host.startswith("["):
        if not host.endswith("]"):
            raise ValueError("an IPv6 host must be written in brackets: [2001:db8::1]")
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ValueError(f"{host} is not an IPv6 address") from None
        return
    if not host:
        raise ValueError("the host is missing")
    if re.fullmatch(r"[0-9.]+", host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise ValueError(f"{host} is not an IPv4 address") from None
        return
    name = host.removesuffix(".")
    if len(name) > 253 or not all(_LABEL.match(label) for label in name.split(".")):
        raise ValueError(f"{host!r} is not a host name")


def parse_ice_url(url: str) -> IceUrl:
    """The parts of an ICE server URL; ``ValueError`` saying what is wrong otherwise."""
    if len(url) > MAX_URL_LENGTH:
        raise ValueError(f"longer than {MAX_URL_LENGTH} characters")
    written, colon, rest = url.partition(":")
    scheme = _SCHEMES.get(written)
    if not colon or scheme is None:
        raise ValueError("must start with stun:, stuns:, turn: or turns:")
    if rest.startswith("//"):
        raise ValueError(f"write {scheme}:host[:port], without //")
    address, question, query = rest.partition("?")
    transport: Transport | None = None
    if question:
        if scheme in ("stun", "stuns"):
            raise ValueError(f"a {scheme}: URL takes no query")
        if query not in ("transport=udp", "transport=tcp"):
            raise ValueError("the only query allowed is ?transport=udp or ?transport=tcp")
        transport = "udp" if query == "transport=udp" else "tcp"
    if "@" in address or "/" in address or "#" in address:
        raise ValueError("no user info, path or fragment: scheme:host[:port] only")
    if address.count(":") > 1 and not address.startswith("["):
        raise ValueError("an IPv6 host must be written in brackets: [2001:db8::1]")
    host, port = address, None
    # The port follows the last colon, outside an IPv6 address's brackets.
    head, colon, tail = address.rpartition(":")
    if colon and not tail.endswith("]"):
        if not _PORT.match(tail) or not 1 <= int(tail) <= 65535:
            raise ValueError(f"port {tail!r} is not a number from 1 to 65535")
        host, port = head, int(tail)
    _check_host(host)
    return IceUrl(scheme, host, port, transport)
