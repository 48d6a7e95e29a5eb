"""A real coturn (``turnserver``) of the test run's own, on 127.0.0.1 and a free port.

It checks credentials the way a production coturn configured for kervan does: the TURN REST
scheme (``use-auth-secret``) with one ``static-auth-secret`` per accepted secret. Everything else
is kept to what the tests need and to this machine: UDP and TCP on 127.0.0.1 only (no TLS, DTLS,
CLI, web admin or RFC 5780 second port), relayed addresses on 127.0.0.1, loopback peers allowed
(both WebRTC peers of a test live here), and no configuration file (``-n``): a system
``/etc/turnserver.conf`` must not change what the tests run against. The log goes to the
server's folder; ``Coturn.log_text()`` shows it when a test fails.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.services import free_port

HOST = "127.0.0.1"
REALM = "kervan.test"
START_TIMEOUT_SECONDS = 15.0
_MAGIC_COOKIE = 0x2112A442
_BINDING_REQUEST = 0x0001
_BINDING_SUCCESS = 0x0101


@dataclass(frozen=True)
class Coturn:
    host: str
    port: int
    #: The accepted shared secrets; kervan signs with the first (``rtc_turn_secrets`` order).
    secrets: tuple[str, ...]
    realm: str
    log_path: Path
    pid: int

    @property
    def secret(self) -> str:
        return self.secrets[0]

    def url(self, transport: str = "udp") -> str:
        return f"turn:{self.host}:{self.port}?transport={transport}"

    def ice_servers_setting(
        self, *, region: str = "local", priority: int = 10
    ) -> list[dict[str, Any]]:
        """``rtc_ice_servers`` pointing at this server (UDP first: aiortc uses the first TURN
        URL of the list)."""
        return [
            {"urls": [self.url("udp"), self.url("tcp")], "region": region, "priority": priority}
        ]

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """The ``KERVAN_RTC_*`` settings of an app whose callers relay through this server."""
        values: dict[str, Any] = {
            "rtc_ice_servers": self.ice_servers_setting(),
            "rtc_turn_secrets": ",".join(self.secrets),
        }
        values.update(overrides)
        return values

    def log_text(self, last: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-last:]
        except OSError:
            return ""


def stun_answers(host: str, port: int, *, timeout: float = 0.3) -> bool:
    """True when a STUN Binding request to ``host:port`` (UDP) gets a success answer."""
    transaction = secrets.token_bytes(12)
    request = _BINDING_REQUEST.to_bytes(2, "big") + b"\x00\x00"
    request += _MAGIC_COOKIE.to_bytes(4, "big") + transaction
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(request, (host, port))
            answer, _ = sock.recvfrom(2048)
        except OSError:  # refused (nothing bound yet) or timed out
            return False
    return (
        len(answer) >= 20
        and int.from_bytes(answer[:2], "big") == _BINDING_SUCCESS
        and answer[8:20] == transaction
    )


def _command(
    binary: str, folder: Path, port: int, accepted: Sequence[str], realm: str
) -> list[str]:
    return [
        binary,
        "-n",  # no configuration file: only these options
        f"--listening-ip={HOST}",
        f"--relay-ip={HOST}",
        f"--listening-port={port}",
        f"--realm={realm}",
        "--use-auth-secret",
        *(f"--static-auth-secret={secret}" for secret in accepted),
        "--allow-loopback-peers",
        "--no-multicast-peers",
        "--no-cli",
        "--no-tls",
        "--no-dtls",
        "--no-rfc5780",
        "--no-software-attribute",
        f"--userdb={folder / 'turndb'}",
        f"--pidfile={folder / 'turnserver.pid'}",
        f"--log-file={folder / 'turnserver.log'}",
        "--simple-log",
        "--no-stdout-log",
    ]


@contextmanager
def running_coturn(
    binary: str,
    folder: Path,
    *,
    accepted: Sequence[str] | None = None,
    realm: str = REALM,
    tries: int = 5,
) -> Iterator[Coturn]:
    """A started ``turnserver`` answering STUN on a free port, stopped on exit.

    ``accepted`` are the shared secrets (two random ones by default: the signing one and a
    previous one still accepted, as during a rotation).
    """
    accepted = tuple(accepted or (secrets.token_urlsafe(24), secrets.token_urlsafe(24)))
    folder.mkdir(parents=True, exist_ok=True)
    log_path = folder / "turnserver.log"
    last_log = ""
    for _ in range(tries):
        port = free_port()
        with open(os.devnull, "wb") as devnull:
            process = subprocess.Popen(
                _command(binary, folder, port, accepted, realm),
                stdout=devnull,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while process.poll() is None and time.monotonic() < deadline:
            if stun_answers(HOST, port):
                break
            time.sleep(0.05)
        else:
            # Exited (the port was taken meanwhile) or never answered: try another port.
            _stop(process)
            last_log = log_path.read_text(errors="replace")[-3000:] if log_path.exists() else ""
            continue
        try:
            yield Coturn(HOST, port, accepted, realm, log_path, process.pid)
        finally:
            _stop(process)
        return
    raise RuntimeError(f"turnserver did not start in {tries} tries:\n{last_log}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
