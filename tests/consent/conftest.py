"""Consent test fixtures."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="session")
def _mariadb_created_outside_the_event_loop(mariadb_server: object) -> None:
    # The shared ``mariadb_server`` fixture migrates with asyncio.run(), which cannot run when
    # it is first requested from inside the async ``database_url`` fixture; creating it here,
    # from a synchronous fixture, avoids that. Unreachable MariaDB still skips in database_url.
    return None
