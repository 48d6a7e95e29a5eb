"""Rules for fetching a source URL: which hosts may be asked, and which addresses may be reached.

Only public unicast addresses are reachable. Addresses that tunnel another address (IPv4-mapped,
NAT64, 6to4, Teredo) are judged by the address they carry, so ``::ffff:127.0.0.1`` is loopback.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from core.images.errors import SourceNotAllowed

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
# Cloud metadata endpoints that are not caught by the generic ranges on every platform.
_METADATA = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),
        ipaddress.ip_address("169.254.170.2"),
        ipaddress.ip_address("100.100.100.200"),
        ipaddress.ip_address("fd00:ec2::254"),
    }
)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return None


def address_kind(address: IPAddress) -> str:
    """``"public"`` or the reason the address must not be contacted."""
    if address in _METADATA:
        return "metadata"
    if isinstance(address, ipaddress.IPv6Address):
        if address in _NAT64_LOCAL:
            return "private"
        inner = _embedded_ipv4(address)
        if inner is not None:
            return address_kind(inner)
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link_local"
    if address.is_multicast:
        return "multicast"
    if address.is_unspecified:
        return "unspecified"
    if address.is_private:
        return "private"
    if address.is_reserved or not address.is_global:
        return "reserved"
    return "public"


def is_public_address(address: IPAddress) -> bool:
    return address_kind(address) == "public"


@dataclass(frozen=True, slots=True)
class SourcePolicy:
    """Which URLs may be fetched: exact host names (no prefix or suffix matching) and schemes."""

    allowed_hosts: frozenset[str]
    allowed_schemes: frozenset[str] = frozenset({"https"})
    allowed_ports: frozenset[int] = frozenset({80, 443})

    @classmethod
    def of(
        cls,
        hosts: Iterable[str],
        schemes: Iterable[str] = ("https",),
        ports: Iterable[int] = (80, 443),
    ) -> SourcePolicy:
        return cls(
            frozenset(_normalise_host(h) for h in hosts if h.strip()),
            frozenset(s.lower() for s in schemes),
            frozenset(ports),
        )

    def check_url(self, url: str) -> tuple[str, str, int]:
        """(scheme, host, port) of an allowed URL; raises ``SourceNotAllowed`` otherwise."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise SourceNotAllowed("the source URL is malformed", details={"url": url}) from exc
        scheme = parts.scheme.lower()
        if scheme not in self.allowed_schemes:
            raise SourceNotAllowed(
                f"scheme {scheme!r} is not allowed",
                details={"allowed": sorted(self.allowed_schemes)},
            )
        if parts.username is not None or parts.password is not None:
            raise SourceNotAllowed("source URLs must not carry credentials")
        host = _normalise_host(parts.hostname or "")
        if not host or host not in self.allowed_hosts:
            raise SourceNotAllowed(
                "the source host is not on the allow-list", details={"host": host}
            )
        effective_port = port if port is not None else (443 if scheme == "https" else 80)
        if effective_port not in self.allowed_ports:
            raise SourceNotAllowed(
                f"port {effective_port} is not allowed", details={"port": effective_port}
            )
        return scheme, host, effective_port


def _normalise_host(host: str) -> str:
    return host.strip().lower().rstrip(".")
