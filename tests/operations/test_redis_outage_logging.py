"""While Redis is down the log tells of the outage as its state changes, not once per request.

``service/backends/health_log.py``: every place that handles a failed Redis call passes it there;
the first failure logs ``redis unavailable``, an outage that goes on ``redis still unavailable``
at most every period with the number of failed calls, the first call that succeeds afterwards
``redis available again``. Checked on the state machine with a hand-moved clock, and on a real
``kervan serve`` whose own Redis is killed and started again while requests keep coming.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from core.errors import StateBackendError
from service.backends.health_log import BackendHealthLog, is_outage
from tests.operations.redis_server import RedisServer, redis_server
from tests.operations.served import Served, served
from tests.services import free_port

ADMIN = {"X-API-Key": "ops-admin-key"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _said(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "kervan.backends"]


def test_an_outage_is_told_as_it_begins_goes_on_and_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    health = BackendHealthLog("redis", interval=10.0, clock=clock)
    with caplog.at_level(logging.INFO, logger="kervan.backends"):
        for _ in range(5000):  # a burst of failing requests
            health.failed("GET /x", "connection refused")
            clock.now += 0.001
        clock.now += 10.0
        health.failed("claiming jobs", "connection refused")
        for _ in range(99):
            health.failed("GET /x", "connection refused")
        clock.now += 2.5
        for _ in range(1000):
            health.answered()
    said = _said(caplog)
    assert said == [
        "redis unavailable: connection refused (GET /x)",
        "redis still unavailable: 5000 failed calls in the last 15 s, the latest: "
        "connection refused (claiming jobs)",
        "redis available again after 17.5 s (5100 failed calls)",
    ]


def test_a_flapping_backend_gives_at_most_two_lines_a_period(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    health = BackendHealthLog("redis", interval=10.0, clock=clock)
    with caplog.at_level(logging.INFO, logger="kervan.backends"):
        for _ in range(6000):  # 60 s of a failure and a success every 10 ms
            health.failed("GET /x", "timeout")
            health.answered()
            clock.now += 0.01
    said = _said(caplog)
    assert len(said) <= 2 * (60 / 10) + 2
    assert said[0] == "redis unavailable: timeout (GET /x)"
    assert all("unavailable" in s or "available again" in s for s in said)


def test_only_an_unreachable_redis_is_an_outage() -> None:
    def wrapped(cause: Exception) -> StateBackendError:
        try:
            raise StateBackendError("redis call failed") from cause
        except StateBackendError as error:
            return error

    assert is_outage(wrapped(RedisConnectionError("Error 111 connecting")))
    assert is_outage(wrapped(ConnectionRefusedError()))
    # An error reply means Redis answered: the caller logs it as before.
    assert not is_outage(wrapped(ResponseError("NOGROUP No such key")))
    assert not is_outage(StateBackendError("unreadable reply"))


# ---------------------------------------------------------------- a served kervan


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path) as server:
        yield server


@pytest.fixture
def kervan(tmp_path: Path, redis: RedisServer) -> Iterator[Served]:
    with served(
        tmp_path,
        free_port(),
        redis_url=redis.url,
        admin_api_key=ADMIN["X-API-Key"],
        # The app-wide per-IP policy checks Redis on every request (and fails open).
        ratelimit_default_policy="public.ip",
    ) as server:
        yield server


def _warnings(server: Served, since: int) -> list[dict[str, object]]:
    return [r for r in server.records()[since:] if r["level"] in ("warning", "error")]


@pytest.mark.slow
def test_requests_while_redis_is_down_log_the_outage_not_each_request(
    kervan: Served, redis: RedisServer
) -> None:
    with httpx.Client(base_url=kervan.url, timeout=10) as client:
        assert client.get("/admin/jobs/dead", headers=ADMIN).status_code == 200
        before = len(kervan.records())
        redis.kill()
        started = time.monotonic()
        statuses = set()
        for _ in range(200):
            statuses.add(client.get("/health").status_code)  # the limiter fails open
            statuses.add(client.get("/admin/jobs/dead", headers=ADMIN).status_code)  # 503
        down_for = time.monotonic() - started
        assert statuses == {200, 503}
        redis.start()
        deadline = time.monotonic() + 30
        while client.get("/admin/jobs/dead", headers=ADMIN).status_code != 200:
            assert time.monotonic() < deadline, "kervan did not get Redis back"
            time.sleep(0.1)
        time.sleep(1.0)  # the access log and the last lines reach the file
    warnings = _warnings(kervan, before)
    per_request = [
        r for r in warnings if r["logger"] in ("kervan.ratelimit", "kervan.errors", "kervan.edge")
    ]
    assert per_request == []
    told = [str(r["msg"]) for r in warnings if r["logger"] == "kervan.backends"]
    assert told, kervan.tail()
    assert told[0].startswith("redis unavailable: ")
    assert told[-1].startswith("redis available again after ")
    still = [t for t in told if t.startswith("redis still unavailable")]
    assert len(told) == 2 + len(still)
    assert len(still) <= down_for / 10 + 1
    # The last line counts every request that failed (and the background loops' calls).
    [back] = [r for r in warnings if str(r["msg"]).startswith("redis available again")]
    assert int(back["failures"]) >= 400  # type: ignore[call-overload]
