"""The events cursor of ``GET /consent/{subject}/events`` is bounded like the BIGINT it pages."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import httpx
import pytest

from service.consent.schemas import MAX_SEQ
from service.db import Database
from service.settings import Settings

ADMIN = {"Authorization": "Bearer test-admin-key"}
MakeClient = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.mark.parametrize("after_seq", [str(MAX_SEQ + 1), "9" * 80])
async def test_a_cursor_past_bigint_is_a_422_not_a_500(
    database: Database,
    make_settings: Callable[..., Settings],
    make_client: MakeClient,
    after_seq: str,
) -> None:
    async with make_client(make_settings(database_url=database.url)) as client:
        recorded = await client.put(
            "/admin/consent/user-c", json={"choices": {"ads": "granted"}}, headers=ADMIN
        )
        assert recorded.status_code == 200, recorded.text

        response = await client.get(f"/consent/user-c/events?after_seq={after_seq}", headers=ADMIN)
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "validation_failed"
        assert [d["field"] for d in error["details"]] == ["query.after_seq"]

        # The largest cursor the column can hold is still a valid (empty) page.
        last = await client.get(f"/consent/user-c/events?after_seq={MAX_SEQ}", headers=ADMIN)
        assert last.status_code == 200, last.text
        assert last.json()["events"] == []
