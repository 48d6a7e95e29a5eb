"""SSRF-safe download of a source image.

Every hop (the first URL and each redirect) is checked against the host allow-list, its host name
is resolved exactly once, every address it resolves to must be public, and the connection goes to
that very address (Host header and TLS SNI carry the name, so certificates are still verified
against it). A DNS answer cannot change between the check and the connection.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from core.images.errors import ImageTooLarge, SourceFetchFailed, SourceNotAllowed
from core.images.ssrf import IPAddress, SourcePolicy, address_kind

Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]
AddressRule = Callable[[IPAddress], str]

_REDIRECTS = frozenset({301, 302, 303, 307, 308})


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise SourceFetchFailed("the source host does not resolve", details={"host": host}) from exc
    seen: dict[str, IPAddress] = {}
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        seen.setdefault(str(address), address)
    return list(seen.values())


@dataclass(frozen=True, slots=True)
class FetchLimits:
    max_bytes: int
    timeout_seconds: float
    max_redirects: int


class SafeFetcher:
    def __init__(
        self,
        policy: SourcePolicy,
        limits: FetchLimits,
        *,
        resolver: Resolver = system_resolver,
        address_rule: AddressRule = address_kind,
        user_agent: str = "kervan-image-fetcher/1",
        tls_verify: ssl.SSLContext | bool = True,
    ) -> None:
        self._policy = policy
        self._limits = limits
        self._resolve = resolver
        self._address_rule = address_rule
        self._user_agent = user_agent
        self._tls_verify = tls_verify

    async def fetch(self, url: str) -> bytes:
        """The body of ``url``, following at most ``max_redirects`` checked redirects."""
        try:
            async with asyncio.timeout(self._limits.timeout_seconds):
                return await self._follow(url)
        except TimeoutError as exc:
            raise SourceFetchFailed(
                "the source did not answer in time",
                details={"timeout_seconds": self._limits.timeout_seconds},
            ) from exc

    async def _pinned_address(self, host: str, port: int) -> IPAddress:
        addresses = await self._resolve(host, port)
        if not addresses:
            raise SourceFetchFailed("the source host does not resolve", details={"host": host})
        for address in addresses:
            kind = self._address_rule(address)
            if kind != "public":
                raise SourceNotAllowed(
                    "the source host resolves to a non-public address",
                    details={"host": host, "address": str(address), "kind": kind},
                )
        return addresses[0]

    async def _follow(self, url: str) -> bytes:
        timeout = httpx.Timeout(self._limits.timeout_seconds)
        # trust_env=False: an environment proxy would resolve names itself and undo the pinning.
        async with httpx.AsyncClient(
            follow_redirects=False, trust_env=False, timeout=timeout, verify=self._tls_verify
        ) as client:
            for _hop in range(self._limits.max_redirects + 1):
                scheme, host, port = self._policy.check_url(url)
                address = await self._pinned_address(host, port)
                status, location, body = await self._request(
                    client, url, scheme, host, port, address
                )
                if status in _REDIRECTS and location:
                    url = urljoin(url, location)
                    continue
                if status != 200:
                    raise SourceFetchFailed(
                        f"the source answered HTTP {status}", details={"status": status}
                    )
                return body
        raise SourceFetchFailed(
            "the source redirected too many times",
            details={"max_redirects": self._limits.max_redirects},
        )

    async def _request(
        self,
        client: httpx.AsyncClient,
        url: str,
        scheme: str,
        host: str,
        port: int,
        address: IPAddress,
    ) -> tuple[int, str | None, bytes]:
        parts = urlsplit(url)
        literal = f"[{address}]" if address.version == 6 else str(address)
        default_port = 443 if scheme == "https" else 80
        netloc = literal if port == default_port else f"{literal}:{port}"
        pinned = urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))
        headers = {
            "Host": host if port == default_port else f"{host}:{port}",
            "User-Agent": self._user_agent,
            "Accept": "image/*",
        }
        extensions = {"sni_hostname": host} if scheme == "https" else {}
        try:
            async with client.stream(
                "GET", pinned, headers=headers, extensions=extensions
            ) as response:
                if response.status_code in _REDIRECTS:
                    return response.status_code, response.headers.get("location"), b""
                if response.status_code != 200:
                    return response.status_code, None, b""
                declared = response.headers.get("content-length")
                if declared is not None and declared.isdigit():
                    self._check_size(int(declared))
                chunks: list[bytes] = []
                received = 0
                async for chunk in response.aiter_bytes():
                    received += len(chunk)
                    self._check_size(received)
                    chunks.append(chunk)
                return 200, None, b"".join(chunks)
        except httpx.HTTPError as exc:
            raise SourceFetchFailed(
                "the source could not be fetched", details={"reason": type(exc).__name__}
            ) from exc

    def _check_size(self, size: int) -> None:
        if size > self._limits.max_bytes:
            raise ImageTooLarge(
                f"the source image has more than {self._limits.max_bytes} bytes",
                details={"max_bytes": self._limits.max_bytes},
            )
