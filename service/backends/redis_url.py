"""What ``KERVAN_REDIS_URL`` points at: one Redis server, or a Redis Cluster.

A cluster is named by ``redis+cluster://[user:password@]host:port[,host:port...][?options]``
(``rediss+cluster://`` for TLS), or by a plain ``redis://``/``rediss://`` URL of any one node
with ``KERVAN_REDIS_CLUSTER=true``. The nodes listed are only where the client starts: it asks
them for the cluster's map of slots and finds every other node from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

SINGLE_SCHEMES = ("redis", "rediss", "unix")
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")


@dataclass(frozen=True, slots=True)
class RedisTarget:
    cluster: bool
    #: A URL redis-py reads: the server's, or (cluster) the first node's with the credentials
    #: and options of the whole URL.
    url: str
    #: Cluster: every node named in the URL, as ``(host, port)``; empty for one server.
    nodes: tuple[tuple[str, int], ...] = ()


def parse_redis_url(url: str, *, cluster: bool = False) -> RedisTarget:
    """Read ``url``; raises ValueError with what is wrong (the settings show it at start)."""
    scheme, sep, rest = url.strip().partition("://")
    if not sep:
        raise ValueError("must be a redis://, rediss://, unix:// or redis+cluster:// URL")
    if scheme in CLUSTER_SCHEMES:
        return _cluster(scheme.partition("+")[0], rest)
    if scheme not in SINGLE_SCHEMES:
        raise ValueError(
            "must be a redis://, rediss://, unix://, redis+cluster:// or rediss+cluster:// URL"
        )
    if not cluster:
        return RedisTarget(False, url.strip())
    if scheme == "unix":
        raise ValueError("a Redis Cluster is reached over TCP: unix:// cannot name one")
    return _cluster(scheme, rest)


def _cluster(scheme: str, rest: str) -> RedisTarget:
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    netloc, tail = rest[:cut], rest[cut:]
    userinfo, at, hosts = netloc.rpartition("@")
    path = tail.partition("?")[0].strip("/")
    if path not in ("", "0"):
        raise ValueError("a Redis Cluster has only database 0")
    nodes = tuple(_node(part) for part in hosts.split(","))
    host, port = nodes[0]
    first = f"[{host}]" if ":" in host else host
    return RedisTarget(True, f"{scheme}://{userinfo}{at}{first}:{port}{tail}", nodes)


def _node(text: str) -> tuple[str, int]:
    try:
        parts = urlsplit(f"//{text.strip()}")
        port = parts.port
    except ValueError:
        port = None
        parts = None
    if parts is None or not parts.hostname or port is None:
        raise ValueError(f"cluster node {text.strip()!r} is not host:port")
    return parts.hostname, port
