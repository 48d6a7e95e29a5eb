"""The SSRF-safe fetcher against a real local HTTP server (names resolved by a test resolver)."""

from __future__ import annotations

import ipaddress
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from core.images.errors import ImageTooLarge, SourceFetchFailed, SourceNotAllowed
from core.images.ssrf import IPAddress, SourcePolicy, address_kind
from service.images.fetcher import FetchLimits, SafeFetcher
from tests.services import require_tool

BODY = b"\xff\xd8\xff" + b"x" * 5000


class _Handler(BaseHTTPRequestHandler):
    seen: list[tuple[str, str]] = []

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        _Handler.seen.append((self.path, self.headers.get("Host", "")))
        port = self.server.server_address[1]
        routes = {
            "/ok.jpg": (200, {}, BODY),
            "/big": (200, {}, b"x" * 20_000),
            "/missing": (404, {}, b"no"),
            "/to-ok": (302, {"Location": "/ok.jpg"}, b""),
            "/to-other-allowed": (302, {"Location": f"http://meta.test:{port}/ok.jpg"}, b""),
            "/to-foreign": (302, {"Location": f"http://evil.test:{port}/ok.jpg"}, b""),
            "/loop": (302, {"Location": "/loop"}, b""),
        }
        if self.path == "/slow":
            time.sleep(1.5)
        if self.path == "/big-chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for _ in range(10):
                chunk = b"y" * 4000
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
            return
        status, headers, body = routes.get(self.path, (200, {}, BODY))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        # Clients that give up (the timeout test) break the pipe; that is expected here.
        pass


@pytest.fixture(scope="module")
def server_port() -> Iterator[int]:
    server = _QuietServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


LOOPBACK = ipaddress.ip_address("127.0.0.1")
DNS: dict[str, list[IPAddress]] = {
    "images.test": [LOOPBACK],
    "meta.test": [ipaddress.ip_address("169.254.169.254")],
    "mixed.test": [LOOPBACK, ipaddress.ip_address("10.0.0.5")],
    "evil.test": [LOOPBACK],
}


class _Resolver:
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> list[IPAddress]:
        self.calls.append(host)
        return DNS.get(host, [])


def _loopback_is_the_public_internet(address: IPAddress) -> str:
    # The local server stands in for a public host; every other address keeps its real class.
    return "public" if address == LOOPBACK else address_kind(address)


def _fetcher(
    port: int,
    resolver: _Resolver,
    *,
    strict: bool = False,
    max_bytes: int = 10_000,
    timeout: float = 5.0,
) -> SafeFetcher:
    policy = SourcePolicy.of(
        ["images.test", "meta.test", "mixed.test", "nodns.test"], schemes=["http"], ports=[port]
    )
    return SafeFetcher(
        policy,
        FetchLimits(max_bytes=max_bytes, timeout_seconds=timeout, max_redirects=3),
        resolver=resolver,
        address_rule=address_kind if strict else _loopback_is_the_public_internet,
    )


async def test_fetches_through_the_pinned_address(server_port: int) -> None:
    resolver = _Resolver()
    body = await _fetcher(server_port, resolver).fetch(f"http://images.test:{server_port}/to-ok")
    assert body == BODY
    # One resolution per hop, and the Host header still names the host.
    assert resolver.calls == ["images.test", "images.test"]
    assert ("/ok.jpg", f"images.test:{server_port}") in _Handler.seen


async def test_loopback_is_refused_before_connecting(server_port: int) -> None:
    before = len(_Handler.seen)
    with pytest.raises(SourceNotAllowed) as info:
        await _fetcher(server_port, _Resolver(), strict=True).fetch(
            f"http://images.test:{server_port}/ok.jpg"
        )
    assert info.value.details["kind"] == "loopback"
    assert len(_Handler.seen) == before


async def test_redirect_to_metadata_address_is_refused(server_port: int) -> None:
    with pytest.raises(SourceNotAllowed) as info:
        await _fetcher(server_port, _Resolver()).fetch(
            f"http://images.test:{server_port}/to-other-allowed"
        )
    assert info.value.details["kind"] == "metadata"


async def test_redirect_to_host_off_the_allow_list_is_refused(server_port: int) -> None:
    with pytest.raises(SourceNotAllowed):
        await _fetcher(server_port, _Resolver()).fetch(
            f"http://images.test:{server_port}/to-foreign"
        )


async def test_any_private_address_in_the_answer_is_refused(server_port: int) -> None:
    with pytest.raises(SourceNotAllowed) as info:
        await _fetcher(server_port, _Resolver()).fetch(f"http://mixed.test:{server_port}/ok.jpg")
    assert info.value.details["kind"] == "private"


@pytest.mark.parametrize("path", ["/big", "/big-chunked"])
async def test_body_size_is_bounded(server_port: int, path: str) -> None:
    with pytest.raises(ImageTooLarge):
        await _fetcher(server_port, _Resolver()).fetch(f"http://images.test:{server_port}{path}")


async def test_time_is_bounded(server_port: int) -> None:
    with pytest.raises(SourceFetchFailed, match="in time"):
        await _fetcher(server_port, _Resolver(), timeout=0.3).fetch(
            f"http://images.test:{server_port}/slow"
        )


async def test_redirect_loops_and_errors_fail_clearly(server_port: int) -> None:
    fetcher = _fetcher(server_port, _Resolver())
    with pytest.raises(SourceFetchFailed, match="too many"):
        await fetcher.fetch(f"http://images.test:{server_port}/loop")
    with pytest.raises(SourceFetchFailed, match="404"):
        await fetcher.fetch(f"http://images.test:{server_port}/missing")
    with pytest.raises(SourceFetchFailed, match="resolve"):
        await _fetcher(server_port, _Resolver()).fetch(f"http://nodns.test:{server_port}/")


def _self_signed(tmp: Path, name: str) -> tuple[Path, Path]:
    cert, key = tmp / f"{name}.crt", tmp / f"{name}.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            f"/CN={name}",
            "-addext",
            f"subjectAltName=DNS:{name}",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    # Missing openssl skips locally but fails under KERVAN_REQUIRE_SERVICES=1 (CI installs it).
    require_tool("openssl", "it makes the test certificate; apt-get install openssl")
    cert, key = _self_signed(tmp_path_factory.mktemp("tls"), "images.test")
    server = _QuietServer(("127.0.0.1", 0), _Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], cert
    server.shutdown()
    server.server_close()


def _tls_fetcher(port: int, trusted: Path, host: str) -> SafeFetcher:
    return SafeFetcher(
        SourcePolicy.of([host], schemes=["https"], ports=[port]),
        FetchLimits(max_bytes=10_000, timeout_seconds=5, max_redirects=1),
        resolver=_Resolver(),
        address_rule=_loopback_is_the_public_internet,
        tls_verify=ssl.create_default_context(cafile=str(trusted)),
    )


async def test_tls_to_the_pinned_address_verifies_the_host_name(
    tls_server: tuple[int, Path],
) -> None:
    port, cert = tls_server
    # Connected to 127.0.0.1, yet SNI and the certificate check use the name.
    body = await _tls_fetcher(port, cert, "images.test").fetch(f"https://images.test:{port}/ok.jpg")
    assert body == BODY


async def test_tls_certificate_for_another_name_is_refused(
    tls_server: tuple[int, Path],
) -> None:
    port, cert = tls_server
    # evil.test resolves to the same address, but the certificate only covers images.test.
    with pytest.raises(SourceFetchFailed):
        await _tls_fetcher(port, cert, "evil.test").fetch(f"https://evil.test:{port}/ok.jpg")
