"""``KERVAN_REDIS_URL`` names a Redis Cluster: the URL forms are read and checked, and the app
serves on a real 3-master cluster named either way."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from service.backends.redis_url import RedisTarget, parse_redis_url
from service.runtime import Runtime
from service.settings import Settings, SettingsError, load_settings


@pytest.mark.parametrize(
    ("url", "cluster", "expected"),
    [
        ("redis://h:6379/0", False, RedisTarget(False, "redis://h:6379/0")),
        ("unix:///run/redis.sock", False, RedisTarget(False, "unix:///run/redis.sock")),
        (
            "redis+cluster://a:7000,b:7001,c:7002",
            False,
            RedisTarget(True, "redis://a:7000", (("a", 7000), ("b", 7001), ("c", 7002))),
        ),
        (
            "rediss+cluster://user:pw@a:7000,[::1]:7001/0?ssl_cert_reqs=none",
            False,
            RedisTarget(
                True,
                "rediss://user:pw@a:7000/0?ssl_cert_reqs=none",
                (("a", 7000), ("::1", 7001)),
            ),
        ),
        ("redis://a:7000", True, RedisTarget(True, "redis://a:7000", (("a", 7000),))),
    ],
)
def test_cluster_urls_are_read(url: str, cluster: bool, expected: RedisTarget) -> None:
    assert parse_redis_url(url, cluster=cluster) == expected


@pytest.mark.parametrize(
    ("url", "cluster", "says"),
    [
        ("http://a:1", False, "must be a redis://"),
        ("redis+cluster://a", False, "not host:port"),
        ("redis+cluster://a:1,,b:2", False, "not host:port"),
        ("redis+cluster://a:1/2", False, "only database 0"),
        ("unix:///run/redis.sock", True, "unix:// cannot name one"),
    ],
)
def test_bad_cluster_urls_stop_the_start(url: str, cluster: bool, says: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(_env_file=None, redis_url=url, redis_cluster=cluster)
    assert "KERVAN_REDIS_URL" in str(caught.value)
    assert says in str(caught.value)


async def _ready_on(settings: Settings, make_client: Any) -> Runtime:
    async with make_client(settings) as client:
        r = await client.get("/ready")
        assert r.status_code == 200, r.text
        assert r.json()["components"]["redis"] == "ok"
        runtime: Runtime = client.app.state.runtime
        assert runtime.backends.cluster
        # A round trip through the key/value store, split per slot on the cluster.
        await runtime.backends.kv.set("probe-a", b"1")
        await runtime.backends.kv.set("probe-b", b"2")
        assert await runtime.backends.kv.get_many(["probe-a", "probe-b"]) == [b"1", b"2"]
        assert await runtime.backends.kv.delete("probe-a", "probe-b") == 2
        return runtime


async def test_the_app_serves_on_a_cluster_named_by_its_url(
    make_settings: Callable[..., Settings],
    make_client: Any,
    redis_cluster_url: str,
    redis_cluster_namespace: str,
) -> None:
    settings = make_settings(redis_url=redis_cluster_url, redis_namespace=redis_cluster_namespace)
    await _ready_on(settings, make_client)


async def test_the_app_serves_on_a_cluster_named_by_one_node_and_the_switch(
    make_settings: Callable[..., Settings],
    make_client: Any,
    redis_cluster_url: str,
    redis_cluster_namespace: str,
) -> None:
    first = redis_cluster_url.partition("://")[2].split(",")[0]
    settings = make_settings(
        redis_url=f"redis://{first}/0",
        redis_cluster=True,
        redis_namespace=redis_cluster_namespace,
    )
    await _ready_on(settings, make_client)
