"""ASGI scopes built from RSGI scopes, as granian's ASGI interface builds them.

granian 2.8's ASGI scope: ``server`` and ``client`` are ``(host, port)`` with the port as a
string, IPv6 hosts without brackets; ``asgi`` spec 2.3; ``root_path`` from the server's path
prefix (none for ``kervan serve``); ``scheme`` ``ws``/``wss`` for WebSockets; the headers as sent
with lower-case names. RSGI gives ``host:port`` strings (IPv6 in brackets), a ``str`` query and
a header map of ``str`` values.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from starlette.types import Scope

from service.fast_routes import Header

ASGI_VERSION = {"version": "3.0", "spec_version": "2.3"}
#: What granian's protocol object can do for an ASGI app: send a file by its path.
HTTP_EXTENSIONS: dict[str, dict[str, Any]] = {"http.response.pathsend": {}}
#: Characters left as they are when the raw path is made again from the decoded one (RFC 3986
#: pchar and "/"): RSGI only gives the decoded path, and nothing in kervan reads ``raw_path``.
_PATH_SAFE = "/:@!$&'()*+,;=-._~"


def address(text: str) -> tuple[str, str] | None:
    """``"127.0.0.1:8000"`` or ``"[::1]:8000"`` as granian's ASGI scope has it."""
    if not text:
        return None
    host, _, port = text.rpartition(":")
    if host.startswith("["):
        host = host[1:-1]
    return host, port


def peer_host(text: str) -> str:
    """The client's address alone (the first item of ASGI's ``client``)."""
    host = text.rpartition(":")[0]
    return host[1:-1] if host.startswith("[") else host


def raw_headers(headers: Any) -> list[Header]:
    """RSGI's header map as an ASGI header list, in the order they came."""
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]


def asgi_scope(scope: Any, state: dict[str, Any], root_path: str = "") -> Scope:
    """The ASGI scope of an RSGI HTTP or WebSocket scope."""
    headers = raw_headers(scope.headers)
    path: str = scope.path
    built: Scope = {
        "type": "http",
        "asgi": ASGI_VERSION,
        "http_version": scope.http_version,
        "server": address(scope.server),
        "client": address(scope.client),
        "scheme": scope.scheme,
        "method": scope.method,
        "root_path": root_path,
        "path": path,
        "raw_path": quote(path, safe=_PATH_SAFE).encode("ascii"),
        "query_string": scope.query_string.encode("latin-1"),
        "headers": headers,
        "state": state.copy(),
    }
    if scope.proto == "ws":
        built["type"] = "websocket"
        del built["method"]
        built["scheme"] = "wss" if scope.scheme == "https" else "ws"
        built["subprotocols"] = [
            item.strip()
            for value in scope.headers.get_all("sec-websocket-protocol")
            for item in value.split(",")
            if item.strip()
        ]
        built["extensions"] = {}
    else:
        built["extensions"] = HTTP_EXTENSIONS
    return built
