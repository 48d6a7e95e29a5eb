"""The flows and rules operations in ``/openapi.json`` state what the handlers enforce, with the
same constants the core rules check."""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
from hypothesis import given
from hypothesis import strategies as st

from core.errors import ValidationFailed
from core.flows.events import SESSION_ID_PATTERN, parse_batch
from core.flows.paths import MAX_PATH_LENGTH, PLAIN_PATH_PATTERN, normalize_path
from core.flows.segments import SEGMENT_PATTERN, validate_segment
from service.settings import Settings
from service.speculation.flows import FlowsFacility

MakeClient = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]
KNOWN = ("en-d", "tr-m", "de-m")


async def _document(make_settings: Callable[..., Settings], make_client: MakeClient) -> Any:
    async with make_client(make_settings()) as client:
        assert client.app.state.runtime.facility(FlowsFacility) is not None  # type: ignore[attr-defined]
        return (await client.get("/openapi.json")).json()


def _resolve(doc: Any, schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    resolved: dict[str, Any] = doc["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    return resolved


async def test_segments_are_documented_with_the_core_pattern(
    make_settings: Callable[..., Settings], make_client: MakeClient
) -> None:
    doc = await _document(make_settings, make_client)
    for path, method in [("/perf/speculation/dynamic", "get"), ("/flows/edges", "get")]:
        params = {p["name"]: p for p in doc["paths"][path][method]["parameters"]}
        seg = params["seg"]
        assert seg["required"] is True
        assert seg["schema"]["pattern"] == SEGMENT_PATTERN
        assert seg["schema"]["maxLength"] == 8
        assert "KERVAN_SPECULATION_SEGMENTS" in seg["schema"]["description"]
    body = doc["paths"]["/flows/edges"]["post"]["requestBody"]["content"]["application/json"]
    assert _resolve(doc, body["schema"])["properties"]["seg"]["pattern"] == SEGMENT_PATTERN


async def test_events_are_exactly_one_of_navigation_or_page_view(
    make_settings: Callable[..., Settings], make_client: MakeClient
) -> None:
    doc = await _document(make_settings, make_client)
    body = doc["paths"]["/flows/events"]["post"]["requestBody"]["content"]["application/json"]
    events = _resolve(doc, body["schema"])["properties"]["events"]
    assert events["maxItems"] == 1000
    members = [_resolve(doc, m) for m in events["items"]["oneOf"]]
    assert [sorted(m["required"]) for m in members] == [
        ["from", "seg", "to"],
        ["path", "seg", "session_id", "ts"],
    ]
    assert all(m["additionalProperties"] is False for m in members)
    navigation, page_view = (m["properties"] for m in members)
    assert navigation["from"]["pattern"] == PLAIN_PATH_PATTERN
    assert navigation["from"]["maxLength"] == MAX_PATH_LENGTH
    assert page_view["session_id"]["pattern"] == SESSION_ID_PATTERN
    assert page_view["ts"]["exclusiveMinimum"] == 0
    assert "7 days" in page_view["ts"]["description"]


async def test_every_success_has_a_schema_and_cross_field_rules_are_described(
    make_settings: Callable[..., Settings], make_client: MakeClient
) -> None:
    doc = await _document(make_settings, make_client)
    for path, method, media in [
        ("/flows/events", "post", "application/json"),
        ("/flows/edges", "post", "application/json"),
        ("/flows/edges", "get", "application/json"),
        ("/perf/speculation/dynamic", "get", "application/speculationrules+json"),
    ]:
        ok = doc["paths"][path][method]["responses"]["200"]
        assert "$ref" in ok["content"][media]["schema"], (path, method)
    imported = _resolve(
        doc,
        doc["paths"]["/flows/edges"]["post"]["responses"]["200"]["content"]["application/json"][
            "schema"
        ],
    )
    assert set(imported["required"]) == {"seg", "replace", "edges"}
    params = {p["name"]: p for p in doc["paths"]["/flows/edges"]["get"]["parameters"]}
    assert "go together" in params["after_from"]["description"]
    assert "go together" in params["after_to"]["description"]
    rules = doc["paths"]["/perf/speculation/dynamic"]["get"]["responses"]
    assert "content" not in rules["304"]


@given(st.from_regex(SEGMENT_PATTERN, fullmatch=True))
def test_the_documented_segment_form_is_the_one_validated(seg: str) -> None:
    # The pattern's strings are well-formed; only the configured set decides further.
    validate_segment(seg, {seg})


@given(st.sampled_from(KNOWN) | st.text(max_size=10))
def test_no_segment_outside_the_documented_form_is_accepted(seg: str) -> None:
    try:
        validate_segment(seg, KNOWN)
    except ValidationFailed:
        return
    assert re.fullmatch(SEGMENT_PATTERN, seg) is not None


@given(st.from_regex(PLAIN_PATH_PATTERN, fullmatch=True).filter(lambda p: len(p) <= 191))
def test_every_documented_path_is_accepted(path: str) -> None:
    normalized = normalize_path(path)
    assert len(normalized) <= len(path)


@given(
    st.from_regex(SESSION_ID_PATTERN, fullmatch=True),
    st.from_regex(PLAIN_PATH_PATTERN, fullmatch=True).filter(lambda p: len(p) <= 191),
)
def test_documented_page_views_are_accepted(session_id: str, path: str) -> None:
    view = {"session_id": session_id, "seg": "en-d", "path": path, "ts": 1.7e9}
    assert len(parse_batch([view], {"en-d"}, ()).page_views) == 1
