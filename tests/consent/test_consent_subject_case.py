"""Subjects that differ only in case are different subjects on SQLite and MariaDB alike.

MariaDB's default utf8mb4 collations ignore case: before migration 0009, ``alice`` and
``Alice`` shared one state row and one event chain there, and the audit check then reported
the log as tampered with.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import httpx

from service.db import Database
from service.settings import Settings

ADMIN = {"Authorization": "Bearer test-admin-key"}
MakeClient = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]
EVERYTHING = "from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z"


async def test_subjects_differing_in_case_keep_their_own_state_and_chain(
    database: Database, make_settings: Callable[..., Settings], make_client: MakeClient
) -> None:
    choices = {"alice": "granted", "Alice": "denied", "ALICE": "granted"}
    async with make_client(make_settings(database_url=database.url)) as client:
        for subject, value in choices.items():
            response = await client.put(
                f"/admin/consent/{subject}", json={"choices": {"ads": value}}, headers=ADMIN
            )
            assert response.status_code == 200, response.text

        for subject, value in choices.items():
            events = (await client.get(f"/consent/{subject}/events", headers=ADMIN)).json()
            assert [(e["subject"], e["seq"], e["value"]) for e in events["events"]] == [
                (subject, 1, value)
            ]
            assert events["verification"]["ok"] is True

        report = (await client.get(f"/admin/consent/verify?{EVERYTHING}", headers=ADMIN)).json()
        assert report["ok"] is True, report
        assert report["subjects"] == 3
