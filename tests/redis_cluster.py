"""A real Redis Cluster of the run's own: three masters on free ports of 127.0.0.1.

Started once per run (``redis_cluster_server`` in tests/conftest.py) for the suites that run
against a cluster as well: a cluster refuses a command or script whose keys lie in two slots
(CROSSSLOT), so those suites prove every key layout cluster-safe.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import redis as sync_redis
from redis.cluster import RedisCluster as SyncRedisCluster

from tests.services import free_port, require_tool

MASTERS = 3


def _port_pair() -> int:
    """A free port whose cluster bus port (port + 10000) is free too."""
    for _ in range(100):
        port = free_port()
        if port > 55535:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a cluster node")


def cluster_url(ports: list[int]) -> str:
    return "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in ports)


def _node_state(port: int) -> str:
    client = sync_redis.Redis(port=port, socket_timeout=0.5, socket_connect_timeout=0.5)
    try:
        # Parsed by redis-py: {"cluster_state": "ok", ...}.
        info: Any = client.execute_command("CLUSTER INFO")  # type: ignore[no-untyped-call]
    except sync_redis.RedisError:
        return ""
    finally:
        client.close()
    state = info.get("cluster_state", "")
    return state.decode() if isinstance(state, bytes) else str(state)


def _wait(check: object, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    raise RuntimeError(f"the test Redis Cluster: {what} within {timeout} s\n{tail}")


@contextmanager
def _node(binary: str, folder: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            str(folder / f"nodes-{port}.conf"),
            "--cluster-node-timeout",
            "5000",
            "--appendonly",
            "no",
            "--save",
            "",
            "--dir",
            str(folder),
            "--logfile",
            str(folder / f"redis-{port}.log"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


def _answers(port: int) -> bool:
    client = sync_redis.Redis(port=port, socket_timeout=0.5, socket_connect_timeout=0.5)
    try:
        return bool(client.ping())
    except sync_redis.RedisError:
        return False
    finally:
        client.close()


@contextmanager
def private_redis_cluster(folder: Path, *, require: bool | None = None) -> Iterator[str]:
    """Three ``redis-server --cluster-enabled yes`` joined by ``redis-cli --cluster create``;
    yields the ``redis+cluster://`` URL once every node reports ``cluster_state:ok``."""
    why = "the Redis Cluster tests start a 3-master cluster: apt-get install redis-server"
    server = require_tool("redis-server", why, require=require)
    cli = require_tool("redis-cli", why, require=require)
    with ExitStack() as stack:
        ports: list[int] = []
        tries = 0
        while len(ports) < MASTERS:
            tries += 1
            port = _port_pair()
            process = stack.enter_context(_node(server, folder, port))
            log = folder / f"redis-{port}.log"
            _wait(
                lambda p=port, pr=process: _answers(p) or pr.poll() is not None, 10, "a node", log
            )
            if process.poll() is None:
                ports.append(port)
            elif tries > 5 * MASTERS:  # a port taken meanwhile is tried again; this is not that
                raise RuntimeError(f"redis-server on port {port} exited: {log.read_text()[-2000:]}")
        created = subprocess.run(
            [
                cli,
                "--cluster",
                "create",
                *(f"127.0.0.1:{port}" for port in ports),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            capture_output=True,
            timeout=60,
            check=False,
        )
        if created.returncode != 0:
            raise RuntimeError(
                "redis-cli --cluster create failed: "
                + created.stdout.decode(errors="replace")[-2000:]
                + created.stderr.decode(errors="replace")[-2000:]
            )
        for port in ports:
            _wait(
                lambda p=port: _node_state(p) == "ok",
                30,
                "cluster_state:ok",
                folder / f"redis-{port}.log",
            )
        yield cluster_url(ports)


def drop_cluster_namespace(url: str, namespace: str) -> None:
    """Test-only cleanup: delete the namespace's keys on every master."""
    ports = [int(part.rpartition(":")[2]) for part in url.partition("://")[2].split(",")]
    client = SyncRedisCluster(host="127.0.0.1", port=ports[0])
    try:
        keys = list(client.scan_iter(match=f"{namespace}:*", count=1000))  # every primary
        if keys:
            client.delete(*keys)  # one DEL per slot
    finally:
        client.close()
