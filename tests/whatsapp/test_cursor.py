"""The conversation cursor: the pattern /openapi.json states is exactly what the decoder takes."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.errors import ApiError
from service.whatsapp import cursor
from tests.whatsapp import payloads as p
from tests.whatsapp.conftest import post_webhook

ADMIN = {"Authorization": "Bearer test-admin-key"}
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
RAW_CURSOR = re.compile(r"[0-9]+:[0-9]+")


def _raw(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _is_cursor(text: str) -> bool:
    """The reference reading: unpadded, canonical base64 of "<digits>:<digits>"."""
    if not text or len(text) % 4 == 1 or any(ch not in B64 for ch in text):
        return False
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error:
        return False
    canonical = base64.urlsafe_b64encode(raw).decode().rstrip("=") == text
    return canonical and RAW_CURSOR.fullmatch(raw.decode("latin-1")) is not None


@given(
    st.datetimes(
        min_value=datetime(1971, 1, 1), max_value=datetime(9000, 1, 1), timezones=st.just(UTC)
    ),
    st.integers(min_value=0, max_value=cursor.MAX_ID),
)
@settings(max_examples=300)
def test_every_issued_cursor_matches_the_pattern_and_decodes_back(
    at: datetime, convo_id: int
) -> None:
    issued = cursor.encode(at, convo_id)
    assert re.fullmatch(cursor.PATTERN, issued)
    decoded_at, decoded_id = cursor.decode(issued)
    assert decoded_id == convo_id
    assert abs((decoded_at - at).total_seconds()) < 1e-3  # micros travel as a float


@given(
    st.from_regex(cursor.PATTERN, fullmatch=True).filter(
        lambda text: 0 < len(text) <= cursor.MAX_LENGTH
    )
)
@settings(max_examples=300)
def test_whatever_the_pattern_admits_is_a_cursor(text: str) -> None:
    assert _is_cursor(text)
    cursor.decode(text)  # never refused


@given(
    st.one_of(
        st.text(alphabet=B64, max_size=40),
        st.text(max_size=20),
        st.builds(
            _raw,
            st.text(alphabet="0123456789:+- _", max_size=30),
        ),
    )
)
@settings(max_examples=500)
def test_the_pattern_admits_exactly_the_cursors(text: str) -> None:
    matches = re.fullmatch(cursor.PATTERN, text) is not None
    assert matches == (_is_cursor(text) or text == "")


@pytest.mark.parametrize("raw", [" 1:2", "1:+2", "1_0:2", "1:2:3", ":2", "1:", "\u0661:2", "1;2"])
def test_what_int_would_read_is_refused(raw: str) -> None:
    with pytest.raises(ApiError) as refused:
        cursor.decode(_raw(raw))
    assert (refused.value.status, refused.value.code) == (400, "invalid_cursor")


def test_values_past_the_columns_ranges_order_after_everything() -> None:
    at, convo_id = cursor.decode(_raw(f"{10**24}:{10**20}"))  # 64 characters at most
    assert at == cursor.LATEST and convo_id == 10**20


async def test_a_cursor_past_every_id_lists_instead_of_failing(client: httpx.AsyncClient) -> None:
    """It reached the database as an unbindable integer (a 500) before."""
    wa = "905000000001"
    await post_webhook(client, p.inbound(wa, "A", p.text(wa, "wamid.C1", "hi")))
    for raw in (f"{10**24}:1", f"1:{10**25}", f"{10**16}:{cursor.MAX_ID + 1}"):
        response = await client.get(
            "/admin/crm/convos", params={"cursor": _raw(raw)}, headers=ADMIN
        )
        assert response.status_code == 200, (raw, response.text)
    listed = await client.get(
        "/admin/crm/convos", params={"cursor": _raw(f"{10**24}:{10**20}")}, headers=ADMIN
    )
    assert [c["contact_name"] for c in listed.json()["items"]] == ["A"]
    empty = await client.get("/admin/crm/convos", params={"cursor": ""}, headers=ADMIN)
    assert empty.status_code == 200 and len(empty.json()["items"]) == 1
    forged = await client.get("/admin/crm/convos", params={"cursor": _raw(" 1:+2")}, headers=ADMIN)
    assert forged.status_code == 400
    assert forged.json()["error"]["code"] == "invalid_cursor"
