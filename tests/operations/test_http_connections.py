"""Connections to a real ``kervan serve`` as an operator's clients and attackers hold them.

* Idle connections that never send a byte are closed after the header timeout, like slow ones
  and keep-alive ones between requests, so they cannot exhaust file descriptors (granian's
  default protocol detection waits for a first byte with no timer; ``service/cli.py``).
* Every early refusal ends the exchange cleanly for a keep-alive client: either the next request
  on the connection is answered, or the refusal says ``Connection: close`` and the server
  closes (``service/middleware/request_body.py``; the server's own refusals of broken framing
  already close).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import orjson
import pytest
from websockets.sync.client import connect as websocket

from service.cli import http_options
from service.settings import Settings
from tests.operations.rawhttp import ends_cleanly, exchange, request
from tests.operations.served import Served, served
from tests.services import free_port

pytestmark = pytest.mark.slow

HEADER_TIMEOUT = "1"
MAX_BODY = 1024  # the smallest KERVAN_MAX_BODY_BYTES allowed
CLOSE_WAIT = 30.0  # far beyond the 1 s timeout: how long a test waits before calling it open
ADMIN = ("X-API-Key", "ops-admin-key")


@pytest.fixture(scope="module")
def kervan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with served(
        tmp_path_factory.mktemp("kervan"),
        free_port(),
        http_header_timeout_seconds=HEADER_TIMEOUT,
        max_body_bytes=str(MAX_BODY),
        admin_api_key=ADMIN[1],
    ) as server:
        yield server


def _open(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=CLOSE_WAIT)


def _closed_by_server(sock: socket.socket, deadline: float) -> bool:
    """Whether the server ends the connection before ``deadline`` (nothing is expected)."""
    sock.settimeout(max(0.1, deadline - time.monotonic()))
    try:
        while chunk := sock.recv(4096):
            # A keep-alive connection's answer, read before the server ends the connection.
            assert chunk.startswith(b"HTTP/1.1 200") or b"\r\n" in chunk, chunk
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return True


def test_granian_serves_http1_with_the_header_timeout_of_the_settings() -> None:
    options = http_options(Settings(_env_file=None, http_header_timeout_seconds=2.5))  # type: ignore[call-arg]
    assert options["http"] == "1"
    assert options["http1_settings"].header_read_timeout == 2500


def test_idle_slow_and_kept_alive_connections_are_closed(kervan: Served) -> None:
    idle = [_open(kervan.port) for _ in range(300)]
    slow = [_open(kervan.port) for _ in range(20)]
    for sock in slow:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: kervan.test\r\n")  # never finished
    kept = [_open(kervan.port) for _ in range(20)]
    for sock in kept:
        sock.sendall(request("GET", "/health"))  # answered, then the connection idles
    deadline = time.monotonic() + CLOSE_WAIT
    still_open = {
        kind: sum(not _closed_by_server(sock, deadline) for sock in socks)
        for kind, socks in (("idle", idle), ("slow", slow), ("kept alive", kept))
    }
    for sock in idle + slow + kept:
        sock.close()
    assert still_open == {"idle": 0, "slow": 0, "kept alive": 0}
    # The server is not worn out by them.
    answer, conn = exchange(kervan.port, request("GET", "/health"))
    conn.close()
    assert answer.status == 200


def test_a_websocket_is_not_cut_by_the_header_timeout(kervan: Served) -> None:
    with websocket(f"ws://127.0.0.1:{kervan.port}/ws/support", open_timeout=10) as ws:
        time.sleep(float(HEADER_TIMEOUT) * 2.5)  # idle past the timeout after the upgrade
        hello = {"type": "hello", "role": "customer", "name": "Ada", "language": "en"}
        ws.send(orjson.dumps(hello))
        kinds = []
        while "welcome" not in kinds:
            kinds.append(orjson.loads(ws.recv(timeout=10))["type"])


LARGE = b'{"events": "' + b"x" * 200_000 + b'"}'  # a ~200 KB body, far past the drain limit
SMALL_OVER_LIMIT = b'{"events": "' + b"x" * (2 * MAX_BODY) + b'"}'


@pytest.mark.parametrize(
    ("raw", "status", "closes"),
    [
        # The route refuses from the declared length, before reading: the rest is too large to
        # read only to drop it, so the answer says close.
        pytest.param(request("POST", "/flows/events", body=LARGE), 413, True, id="413-200KB"),
        # A small rest is read and dropped: the connection stays usable.
        pytest.param(
            request("POST", "/flows/events", body=SMALL_OVER_LIMIT), 413, False, id="413-small"
        ),
        pytest.param(request("POST", "/flows/edges", body=b"{}" * 100), 401, False, id="401"),
        pytest.param(request("POST", "/nowhere", body=LARGE), 404, True, id="404-200KB"),
        pytest.param(request("POST", "/nowhere", body=b"{}"), 404, False, id="404-small"),
        pytest.param(request("DELETE", "/health", body=b"{}"), 405, False, id="405"),
        # The client waits for 100 Continue before sending a body nobody will read.
        pytest.param(
            request(
                "POST",
                "/flows/edges",
                headers=[("Content-Length", "5000"), ("Expect", "100-continue")],
            ),
            401,
            True,
            id="expect-100-continue",
        ),
        # Declared, never sent: answered once the drain gives up, and closed.
        pytest.param(
            request("POST", "/flows/edges", headers=[("Content-Length", "1000")]) + b"{}",
            401,
            True,
            id="stalled-body",
        ),
        # Broken chunked framing ends the body early: 400, never a 500.
        pytest.param(
            request(
                "POST",
                "/flows/events",
                headers=[("Transfer-Encoding", "chunked"), ("Content-Type", "application/json")],
            )
            + b"zz\r\nabc\r\n0\r\n\r\n",
            400,
            True,
            id="malformed-chunk",
        ),
        # Refused by the server itself, before kervan runs.
        pytest.param(
            request("POST", "/flows/events", headers=[("Content-Length", "3")]).replace(
                b"Content-Length: 3", b"Content-Length: 3\r\nContent-Length: 4"
            )
            + b"abcd",
            400,
            True,
            id="two-lengths",
        ),
        pytest.param(
            request("POST", "/flows/events", headers=[("Content-Length", "abc")]),
            400,
            True,
            id="bad-length",
        ),
        pytest.param(
            request("GET", "/health", headers=[("X-Padding", "a" * 600_000)]),
            431,
            True,
            id="431",
        ),
    ],
)
def test_every_early_refusal_ends_the_exchange_cleanly(
    kervan: Served, raw: bytes, status: int, closes: bool
) -> None:
    answer = ends_cleanly(kervan.port, raw)
    assert (answer.status, answer.closes) == (status, closes), answer
    if status < 431 and answer.body:
        assert set(orjson.loads(answer.body)["error"]) == {"code", "message", "details"}
