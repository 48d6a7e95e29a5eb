"""Shared fixtures: the real Redis and MariaDB, isolated per run, and app clients.

Every run gets its own Redis key namespace and its own throw-away MariaDB database, so
parallel runs on one machine never see each other's data.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis as sync_redis
from hypothesis import settings as hypothesis_settings
from sqlalchemy import delete
from sqlalchemy.engine import make_url

from service.app import create_app
from service.backends import Backends, memory_backends, redis_backends
from service.backends.redis import check_version
from service.db import Database
from service.db.metadata import metadata
from service.db.migrate import migrate
from service.settings import Settings
from service.tracking.scope import ALL_SITES, install_scope_guard
from tests.redis_cluster import drop_cluster_namespace, private_redis_cluster
from tests.services import (
    ServiceDown,
    ServiceState,
    drop_mariadb,
    prepare_mariadb,
    private_redis_server,
    service_url,
)
from tests.settings import TEST_ENV

# Property tests are derandomized by default: every run (and CI) tries the same examples, so a
# red run reproduces and a green one does not hide a flake. `--hypothesis-profile=explore`
# searches with fresh random examples instead.
hypothesis_settings.register_profile("kervan", derandomize=True, database=None)
hypothesis_settings.register_profile("explore", derandomize=False)
hypothesis_settings.load_profile("kervan")

RUN_ID = uuid.uuid4().hex[:10]
# Every statement of every test on a site's tracking rows must name the site.
install_scope_guard()
_counter = iter(range(1_000_000))


def unique(prefix: str) -> str:
    return f"{prefix}-{RUN_ID}-{next(_counter)}"


# ---------------------------------------------------------------- Redis


@pytest.fixture(scope="session")
def redis_server() -> ServiceState:
    try:
        client = sync_redis.Redis.from_url(TEST_ENV.test_redis_url, socket_timeout=2)
        client.ping()
        version = str(client.info("server").get("redis_version", ""))
        client.close()
    except Exception as exc:
        return ServiceDown("Redis", exc)
    # A server that answers but is too old for kervan's scripts is an error, never a skip.
    check_version(version)
    return TEST_ENV.test_redis_url


@pytest.fixture
def redis_url(redis_server: ServiceState) -> str:
    return service_url(redis_server)


@pytest.fixture(scope="module")
def private_redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A redis-server of the module's own, for tests that pause or kill every client of it."""
    with private_redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


def _drop_namespace(url: str, namespace: str) -> None:
    # Test-only cleanup; product code never scans the keyspace.
    client = sync_redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{namespace}:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def redis_namespace(redis_url: str) -> Iterator[str]:
    namespace = unique("kt")
    yield namespace
    _drop_namespace(redis_url, namespace)


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real 3-master Redis Cluster for the run (tests/redis_cluster.py): skipped without
    redis-server and redis-cli, failed instead under KERVAN_REQUIRE_SERVICES=1."""
    with private_redis_cluster(tmp_path_factory.mktemp("redis-cluster")) as url:
        yield url


@pytest.fixture
def redis_cluster_namespace(redis_cluster_url: str) -> Iterator[str]:
    namespace = unique("kc")
    yield namespace
    drop_cluster_namespace(redis_cluster_url, namespace)


# ---------------------------------------------------------------- MariaDB


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[ServiceState]:
    """The run's own migrated database; an unreachable server and a failed set-up are told apart
    (the first skips or fails under KERVAN_REQUIRE_SERVICES=1, the second is always an error)."""
    base = make_url(TEST_ENV.test_mariadb_url)
    name = f"kervan_test_{RUN_ID}"
    params = {
        "host": base.host or "127.0.0.1",
        "port": base.port or 3306,
        "user": base.username or "root",
        "password": base.password or "",
        "connect_timeout": 3,
    }
    url = base.set(database=name).render_as_string(hide_password=False)
    state, created = prepare_mariadb(params, name, url, _migrate_in_thread)
    try:
        yield state
    finally:
        if created:
            drop_mariadb(params, name)


def _migrate_in_thread(url: str) -> Exception | None:
    # A thread of its own: this session fixture may first be requested from inside a running
    # event loop (an async fixture), where asyncio.run is not allowed.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _migrate_url(url)).result()


async def _migrate_url(url: str) -> Exception | None:
    db = Database(url)
    try:
        await migrate(db)
    except Exception as exc:  # reported by the fixture that needs the database
        return exc
    finally:
        await db.dispose()
    return None


@pytest.fixture
def mariadb_url(mariadb_server: ServiceState) -> str:
    return service_url(mariadb_server)


async def _clear_tables(db: Database) -> None:
    async with db.begin() as conn:
        await conn.execution_options(**ALL_SITES)
        for table in reversed(metadata.sorted_tables):
            await conn.execute(delete(table))


# ---------------------------------------------------------------- parametrized backends


@pytest.fixture(params=["sqlite", "mariadb"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A migrated, empty database: a fresh SQLite file, or the run's MariaDB emptied after use."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'kervan.db'}"
        db = Database(url)
        await migrate(db)
        await db.dispose()
        yield url
        return
    url = request.getfixturevalue("mariadb_url")
    db = Database(url)
    try:
        # Also before: tests that take ``mariadb_url`` itself (several processes sharing the
        # run's database) leave their rows behind.
        await _clear_tables(db)
    finally:
        await db.dispose()
    yield url
    db = Database(url)
    try:
        await _clear_tables(db)
    finally:
        await db.dispose()


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    db = Database(database_url)
    yield db
    await db.dispose()


#: The state backends every contract suite runs on: in-process, one Redis, a Redis Cluster.
BACKEND_KINDS = ["memory", "redis", "redis-cluster"]


@pytest.fixture(params=BACKEND_KINDS)
def backend_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def backends_url(request: pytest.FixtureRequest, backend_kind: str) -> str:
    """The URL of the Redis (or cluster) of ``backend_kind``, for a test that opens more
    ``Backends`` on it (as more processes would)."""
    if backend_kind == "redis-cluster":
        return str(request.getfixturevalue("redis_cluster_url"))
    return str(request.getfixturevalue("redis_url"))


@pytest.fixture
async def backends(request: pytest.FixtureRequest, backend_kind: str) -> AsyncIterator[Backends]:
    if backend_kind == "memory":
        made = memory_backends(unique("km"))
    elif backend_kind == "redis-cluster":
        url = request.getfixturevalue("redis_cluster_url")
        made = redis_backends(url, request.getfixturevalue("redis_cluster_namespace"))
    else:
        url = request.getfixturevalue("redis_url")
        made = redis_backends(url, request.getfixturevalue("redis_namespace"))
    yield made
    await made.close()


@pytest.fixture
def make_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[..., Settings]:
    """Settings for an isolated app: an embedded SQLite file unless ``database_url`` is given."""

    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": f"sqlite+aiosqlite:///{tmp_path / 'app.db'}",
            "redis_url": None,
            "redis_namespace": unique("ka"),
            "admin_api_key": "test-admin-key",
            "data_dir": tmp_path / "data",
            # Tests send bursts from one address; the app-wide per-IP policy is exercised by
            # the tests that turn it back on (tests/ratelimit/test_http.py).
            "ratelimit_default_policy": "",
            # A loaded test machine must not shed the requests a test sends (degrade mode is
            # exercised by tests/overload with it set on purpose).
            "degrade_mode": "off",
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return build


@asynccontextmanager
async def running_client(settings: Settings, **app_kwargs: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client talking to a fully started app (lifespan run, database migrated)."""
    db = Database(settings.database_url)
    await migrate(db)
    await db.dispose()
    app = create_app(settings, **app_kwargs)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            client.app = app  # type: ignore[attr-defined]
            yield client


@pytest.fixture
def make_client() -> Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]:
    return running_client
