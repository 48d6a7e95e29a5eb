"""deploy/nginx.conf: nginx accepts it (`nginx -t`, with a throw-away self-signed certificate
and paths moved to a temporary folder), and it agrees with kervan's routes and settings."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from starlette.routing import WebSocketRoute

from service.routes.images import IMMUTABLE
from service.settings import Settings
from tests.k8s.manifests import K8S, ROOT, read_env_file
from tests.k8s.test_workloads import _app_routes, get_route_exists
from tests.services import require_tool

CONF = ROOT / "deploy" / "nginx.conf"


@dataclass
class Directive:
    name: str
    args: list[str]
    block: list[Directive] | None = None

    def all(self, name: str) -> list[Directive]:
        return [d for d in self.block or [] if d.name == name]

    def get(self, name: str) -> Directive:
        found = self.all(name)
        assert len(found) == 1, f"{self.name} {self.args}: {len(found)} {name} directives"
        return found[0]

    def value(self, name: str) -> str | None:
        found = self.all(name)
        return " ".join(found[0].args) if found else None


@dataclass
class _Parser:
    tokens: list[str]
    pos: int = 0
    root: list[Directive] = field(default_factory=list)

    def parse(self) -> list[Directive]:
        out: list[Directive] = []
        while self.pos < len(self.tokens):
            token = self.tokens[self.pos]
            if token == "}":
                self.pos += 1
                return out
            words: list[str] = []
            while self.tokens[self.pos] not in (";", "{"):
                words.append(self.tokens[self.pos])
                self.pos += 1
            end = self.tokens[self.pos]
            self.pos += 1
            block = self.parse() if end == "{" else None
            out.append(Directive(words[0], words[1:], block))
        return out


def parse_nginx(text: str) -> Directive:
    """nginx's grammar, enough for reading this file: words, quoted strings, `;`, blocks."""
    tokens = re.findall(r"'[^']*'|\"[^\"]*\"|[{};]|[^\s{};]+", re.sub(r"#[^\n]*", "", text))
    return Directive("main", [], _Parser([t.strip("'\"") for t in tokens]).parse())


def conf() -> Directive:
    return parse_nginx(CONF.read_text())


def tls_server(http: Directive) -> Directive:
    servers = [s for s in http.all("server") if any("ssl" in d.args for d in s.all("listen"))]
    assert len(servers) == 1
    return servers[0]


def location(server: Directive, *args: str) -> Directive:
    found = [d for d in server.all("location") if d.args == list(args)]
    assert len(found) == 1, f"location {' '.join(args)}"
    return found[0]


def size_bytes(value: str) -> int:
    match = re.fullmatch(r"(\d+)([kmg]?)", value.lower())
    assert match, value
    return int(match.group(1)) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[match.group(2)]


def seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)(ms|s|m)?", value)
    assert match, value
    return int(match.group(1)) * {None: 1.0, "s": 1.0, "ms": 0.001, "m": 60.0}[match.group(2)]


def defaults() -> Settings:
    return Settings(_env_file=None)  # type: ignore[call-arg]


# ---------------------------------------------------------------- nginx itself


def test_nginx_accepts_the_configuration(tmp_path: Path) -> None:
    nginx = require_tool("nginx", "it checks deploy/nginx.conf; apt-get install nginx-light")
    openssl = require_tool("openssl", "it makes the test certificate; apt-get install openssl")
    cert, key = tmp_path / "kervan.crt", tmp_path / "kervan.key"
    made = subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=www.example.com", "-keyout", str(key), "-out", str(cert)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    text = CONF.read_text()
    for old, new in (
        ("/etc/nginx/tls/kervan.crt", str(cert)),
        ("/etc/nginx/tls/kervan.key", str(key)),
        ("/var/cache/nginx/kervan", str(tmp_path / "cache")),
        ("/var/log/nginx/", f"{tmp_path}/"),
    ):
        assert old in text, old
        text = text.replace(old, new)
    moved = tmp_path / "nginx.conf"
    moved.write_text(text)
    checked = subprocess.run(
        [nginx, "-t", "-q", "-c", str(moved), "-p", f"{tmp_path}/", "-e", str(tmp_path / "e.log")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr


def test_the_parser_reads_blocks_and_strings() -> None:
    parsed = parse_nginx("a 1;  # note\nb { c 'x y'; d { e; } }\n")
    assert [d.name for d in parsed.block or []] == ["a", "b"]
    assert parsed.get("b").get("c").args == ["x y"]
    assert parsed.get("b").get("d").get("e").args == []


# ---------------------------------------------------------------- agreement with kervan


def test_upstreams_are_kervan_processes_with_passive_health_checks() -> None:
    http = conf().get("http")
    port = read_env_file(K8S / "base" / "config.env").get("KERVAN_PORT", str(defaults().port))
    upstream = http.get("upstream")
    servers = upstream.all("server")
    assert len(servers) >= 2
    for server in servers:
        assert server.args[0].endswith(f":{port}")
        options = dict(a.split("=", 1) for a in server.args[1:])
        assert int(options["max_fails"]) >= 1 and seconds(options["fail_timeout"]) > 0
    assert upstream.value("keepalive")
    server = tls_server(http)
    retried = server.get("proxy_next_upstream").args
    assert "error" in retried and "timeout" in retried
    # kervan's deliberate 503 (shedding, with Retry-After) must not mark a server failed.
    assert "http_503" not in retried
    for loc in server.all("location"):
        target = loc.value("proxy_pass")
        assert target in (None, f"http://{upstream.args[0]}"), loc.args


def test_tls_and_forwarded_for_as_kervan_reads_them() -> None:
    server = tls_server(conf().get("http"))
    assert server.value("ssl_certificate") and server.value("ssl_certificate_key")
    assert set(server.get("ssl_protocols").args) <= {"TLSv1.2", "TLSv1.3"}
    headers = {d.args[0].lower(): d.args[1] for d in server.all("proxy_set_header")}
    # Appended, so kervan's right-to-left walk over KERVAN_TRUSTED_PROXIES finds the client.
    assert headers["x-forwarded-for"] == "$proxy_add_x_forwarded_for"
    assert headers["host"] == "$host"
    # nginx drops every inherited proxy_set_header in a location that sets one of its own.
    for loc in server.all("location"):
        assert not loc.all("proxy_set_header"), loc.args
    assert read_env_file(K8S / "base" / "config.env")["KERVAN_TRUSTED_PROXIES"]


def test_websocket_location_upgrades_and_outlives_the_heartbeat(tmp_path: Path) -> None:
    http = conf().get("http")
    server = tls_server(http)
    headers = {d.args[0].lower(): d.args[1] for d in server.all("proxy_set_header")}
    assert headers["upgrade"] == "$http_upgrade"
    upgrade_map = next(
        m for m in http.all("map") if m.args == ["$http_upgrade", "$connection_upgrade"]
    )
    assert upgrade_map.get("default").args == ["upgrade"]
    assert headers["connection"] == "$connection_upgrade"
    assert server.value("proxy_http_version") == "1.1"
    ws = location(server, "/ws/")
    sockets = [r.path for r in _app_routes(tmp_path) if isinstance(r, WebSocketRoute)]
    assert sockets and all(path.startswith("/ws/") for path in sockets)
    # kervan pings every heartbeat and drops a socket silent for two: nginx must wait longer.
    heartbeat = defaults().support_heartbeat_seconds
    assert seconds(ws.get("proxy_read_timeout").args[0]) > 2 * heartbeat


def test_bodies_kervan_accepts_pass_nginx() -> None:
    server = tls_server(conf().get("http"))
    settings = defaults()
    default_limit = size_bytes(server.get("client_max_body_size").args[0])
    assert default_limit >= max(settings.max_body_bytes, settings.whatsapp_max_body_bytes)
    upload = location(server, "=", "/admin/images")
    assert size_bytes(upload.get("client_max_body_size").args[0]) > settings.images_max_bytes


def test_immutable_assets_are_cached_at_the_edge(tmp_path: Path) -> None:
    http = conf().get("http")
    server = tls_server(http)
    zones = {
        arg.removeprefix("keys_zone=").split(":")[0]
        for cache in http.all("proxy_cache_path")
        for arg in cache.args
        if arg.startswith("keys_zone=")
    }
    routes = _app_routes(tmp_path)
    assert "immutable" in IMMUTABLE and "max-age=31536000" in IMMUTABLE
    for prefix, sample in (
        ("/img/", "/img/abc/w640.avif"),
        ("/iiif/", "/iiif/abc/0,0,512,512/512,/0/default.jpg"),
        ("/static/", "/static/progressive-image.js"),
    ):
        assert get_route_exists(routes, sample), sample
        loc = location(server, prefix)
        assert loc.value("proxy_cache") in zones
        # Cached as long as kervan's Cache-Control says: no override of its lifetimes.
        assert loc.value("proxy_ignore_headers") is None
        assert loc.value("proxy_cache_valid") is None


def test_metrics_are_not_published() -> None:
    server = tls_server(conf().get("http"))
    assert location(server, "=", "/metrics").value("return") == "404"
