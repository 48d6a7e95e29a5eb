"""Fixtures of the WebRTC tests: a real coturn for the run, and served desks whose callers get
ICE servers pointing at it.

``serve_desk`` (the app on a real port, embedded backends and the real Redis) is the support
tests' own fixture, reused here; ``tests/rtc/rooms.py`` puts a customer and an admin in a room.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest

from service.settings import Settings
from tests.rtc.coturn import Coturn, running_coturn
from tests.services import require_tool
from tests.support.conftest import FAST, serve_desk
from tests.support.wsclient import Desk

__all__ = ["coturn", "serve_desk", "serve_relay_desk"]


@pytest.fixture(scope="session")
def coturn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Coturn]:
    """A real ``turnserver`` for the whole run (see ``tests/rtc/coturn.py``); skipped when coturn
    is not installed, failed instead under ``KERVAN_REQUIRE_SERVICES=1``."""
    binary = require_tool(
        "turnserver", "the TURN relay tests run a real coturn: apt-get install coturn"
    )
    with running_coturn(binary, tmp_path_factory.mktemp("coturn")) as server:
        yield server


@pytest.fixture
def serve_relay_desk(
    make_settings: Callable[..., Settings], coturn: Coturn
) -> Callable[..., AbstractAsyncContextManager[Desk]]:
    """``async with serve_relay_desk(**settings) as desk``: the app on a real port (embedded
    backends) whose ``/rtc/ice-servers`` hands out ``coturn`` with credentials it accepts."""

    @asynccontextmanager
    async def serve(**overrides: Any) -> AsyncIterator[Desk]:
        settings = make_settings(**{**FAST, **coturn.settings(), **overrides})
        async with Desk.serve(settings) as desk:
            yield desk

    return serve
