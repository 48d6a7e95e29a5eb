"""The suite's own handling of missing servers and tools (tests/services.py, tests/conftest.py).

An unreachable server skips its tests (fails under KERVAN_REQUIRE_SERVICES=1); a server that
answered but could not be prepared (the run's MariaDB database not created or not migrated) is
always an error showing the real exception, never a skip that hides a broken migration.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pymysql
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import RUN_ID
from tests.services import (
    ServiceDown,
    ServiceSetupError,
    SetupFailed,
    drop_mariadb,
    prepare_mariadb,
    private_redis_server,
    require_tool,
    service_url,
)
from tests.settings import TEST_ENV

PARAMS: dict[str, Any] = {"host": "db.invalid", "port": 3306, "user": "root", "password": ""}


@pytest.mark.parametrize("require", [False, True])
def test_a_prepared_server_gives_its_url(require: bool) -> None:
    assert service_url("mariadb+aiomysql://x/y", require=require) == "mariadb+aiomysql://x/y"


def test_an_unreachable_server_skips() -> None:
    down = ServiceDown("MariaDB", ConnectionRefusedError("connection refused"))
    with pytest.raises(pytest.skip.Exception, match=r"MariaDB is unreachable \(connection refused"):
        service_url(down, require=False)


def test_an_unreachable_server_fails_when_services_are_required() -> None:
    down = ServiceDown("Redis", ConnectionRefusedError("connection refused"))
    with pytest.raises(pytest.fail.Exception, match="KERVAN_REQUIRE_SERVICES=1 and Redis is"):
        service_url(down, require=True)


@pytest.mark.parametrize("require", [False, True])
def test_a_failed_setup_is_an_error_with_the_real_exception(require: bool) -> None:
    cause = KeyError("migration 0007 references a missing column")
    failed = SetupFailed("MariaDB", "migrating the database kervan_test_x", cause)
    with pytest.raises(ServiceSetupError) as raised:
        service_url(failed, require=require)
    # Neither a skip nor a "server unreachable" failure: an error naming the step and the cause.
    assert not isinstance(raised.value, (pytest.skip.Exception, pytest.fail.Exception))
    assert raised.value.__cause__ is cause
    message = str(raised.value)
    assert "reachable but migrating the database kervan_test_x failed" in message
    assert "KeyError" in message and "missing column" in message
    assert "unreachable" not in message


class _Cursor:
    def __init__(self, conn: _Connection) -> None:
        self.conn = conn

    def __enter__(self) -> _Cursor:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def execute(self, sql: str) -> None:
        if self.conn.refuse is not None:
            raise self.conn.refuse
        self.conn.executed.append(sql)


class _Connection:
    def __init__(self, refuse: Exception | None = None) -> None:
        self.refuse = refuse
        self.executed: list[str] = []
        self.closed = False

    def cursor(self) -> _Cursor:
        return _Cursor(self)

    def close(self) -> None:
        self.closed = True


def _never_migrate(url: str) -> Exception | None:
    raise AssertionError("must not migrate")


def test_prepare_mariadb_cannot_connect_is_service_down() -> None:
    refused = pymysql.err.OperationalError(2003, "Can't connect to MySQL server")

    def connect(**params: Any) -> Any:
        raise refused

    state, created = prepare_mariadb(PARAMS, "kt_x", "url", _never_migrate, connect=connect)
    assert state == ServiceDown("MariaDB", refused)
    assert created is False


def test_prepare_mariadb_failed_create_is_setup_failed() -> None:
    denied = pymysql.err.OperationalError(1044, "Access denied for user to database")
    conn = _Connection(refuse=denied)
    state, created = prepare_mariadb(
        PARAMS, "kt_x", "url", _never_migrate, connect=lambda **_: conn
    )
    assert isinstance(state, SetupFailed) and state.error is denied
    assert "creating the database kt_x" in state.step
    assert created is False and conn.closed


def test_prepare_mariadb_failed_migration_is_setup_failed() -> None:
    broken = RuntimeError("duplicate column name 'status'")
    conn = _Connection()
    migrated: list[str] = []

    def migrate(url: str) -> Exception | None:
        migrated.append(url)
        return broken

    state, created = prepare_mariadb(PARAMS, "kt_x", "the-url", migrate, connect=lambda **_: conn)
    assert isinstance(state, SetupFailed) and state.error is broken
    assert "migrating the database kt_x" in state.step
    assert created is True  # so the fixture drops it
    assert migrated == ["the-url"] and conn.closed
    assert conn.executed and conn.executed[0].startswith("CREATE DATABASE `kt_x`")


def test_prepare_mariadb_success_gives_the_url() -> None:
    state, created = prepare_mariadb(
        PARAMS, "kt_x", "the-url", lambda url: None, connect=lambda **_: _Connection()
    )
    assert (state, created) == ("the-url", True)


@pytest.mark.mariadb
def test_a_failed_migration_on_the_real_server_is_an_error(mariadb_url: str) -> None:
    """The real server answers (``mariadb_url`` skips or fails otherwise), the migration breaks:
    the state is a set-up failure, the half-made database is dropped afterwards."""
    base = make_url(mariadb_url)
    params = {
        "host": base.host or "127.0.0.1",
        "port": base.port or 3306,
        "user": base.username or "root",
        "password": base.password or "",
        "connect_timeout": 3,
    }
    name = f"kervan_test_{RUN_ID}_broken"
    cause = RuntimeError("planted migration failure")
    state, created = prepare_mariadb(params, name, "unused", lambda url: cause)
    try:
        assert created
        assert isinstance(state, SetupFailed) and state.error is cause
        with pytest.raises(ServiceSetupError, match="planted migration failure"):
            service_url(state, require=False)
    finally:
        drop_mariadb(params, name)
    conn = pymysql.connect(**params)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW DATABASES LIKE %s", (name,))
            assert cur.fetchall() == ()
    finally:
        conn.close()


@pytest.mark.parametrize("require", [False, True])
def test_a_missing_tool_skips_or_fails_when_required(require: bool) -> None:
    outcome = pytest.fail.Exception if require else pytest.skip.Exception
    with pytest.raises(outcome, match="kervan-no-such-tool executable is not installed"):
        require_tool("kervan-no-such-tool", "testing the check", require=require)


@pytest.mark.parametrize("require", [False, True])
def test_a_private_redis_without_redis_server_skips_or_fails(
    require: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing to run there
    outcome = pytest.fail.Exception if require else pytest.skip.Exception
    with (
        pytest.raises(outcome, match="redis-server executable is not installed"),
        private_redis_server(tmp_path, require=require),
    ):
        pass


def test_the_suite_follows_kervan_require_services() -> None:
    # The default of every check above is the run's setting (CI sets it).
    with pytest.raises(
        pytest.fail.Exception if TEST_ENV.require_services else pytest.skip.Exception
    ):
        require_tool("kervan-no-such-tool", "testing the default")
