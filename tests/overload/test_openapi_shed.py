"""The OpenAPI document states degrade mode's 503 (with Retry-After and the error body) on
exactly the operations that can be shed, and on none of the protected ones; and what it states
is what the edge does."""

from __future__ import annotations

from typing import Any

from service.openapi import SHED_KEY
from service.overload.priority import low_priority_kind, shed_kinds

PREFETCH = {"Sec-Purpose": "prefetch"}
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
#: Webhooks, sends and call signaling: never shed (the socket is not an HTTP operation).
PROTECTED = [
    ("get", "/webhooks/wa"),
    ("post", "/webhooks/wa"),
    ("post", "/admin/wa/send"),
    ("get", "/rtc/ice-servers"),
]


async def _document(make_client: Any, make_settings: Any) -> dict[str, Any]:
    async with make_client(make_settings()) as client:
        response = await client.get("/openapi.json")
        assert response.status_code == 200
        doc: dict[str, Any] = response.json()
        return doc


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in METHODS
    ]


async def test_exactly_the_sheddable_operations_document_the_shed_503(
    make_client: Any, make_settings: Any
) -> None:
    doc = await _document(make_client, make_settings)
    operations = _operations(doc)
    shed = {(m, p) for m, p, op in operations if SHED_KEY in op}
    expected = {(m, p) for m, p, _ in operations if shed_kinds(p, m.upper())}
    assert shed == expected
    # Every GET is a possible prefetch; POSTs and the other writes are never shed.
    assert ("get", "/t/sites/{site_id}/dashboard/kpis") in shed
    assert ("get", "/img/{image_id}/{name}") in shed
    assert ("post", "/admin/crm/convos/{convo_id}/close") not in shed
    for method, path, op in operations:
        if (method, path) not in shed:
            continue
        response = op["responses"]["503"]
        assert "Shed under load" in response["description"], (method, path)
        assert response["headers"]["Retry-After"]["schema"] == {"type": "integer"}
        schema = response["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/Error"}
        assert "prefetch" in op[SHED_KEY]
    kpis = doc["paths"]["/t/sites/{site_id}/dashboard/kpis"]["get"]
    assert kpis[SHED_KEY] == ["prefetch", "dashboard"]
    variant = doc["paths"]["/img/{image_id}/{name}"]["get"]
    assert variant[SHED_KEY] == ["prefetch", "image_render"]
    # An operation that had no 503 gets one whose Retry-After is always sent.
    only_shed = [
        op["responses"]["503"]
        for m, p, op in operations
        if (m, p) in shed and op["responses"]["503"]["description"].startswith("Shed")
    ]
    assert only_shed
    assert all(r["headers"]["Retry-After"]["required"] is True for r in only_shed)


async def test_protected_operations_document_no_shed_503(
    make_client: Any, make_settings: Any
) -> None:
    doc = await _document(make_client, make_settings)
    for method, path in PROTECTED:
        op = doc["paths"][path][method]
        assert SHED_KEY not in op, (method, path)
        response = op["responses"].get("503")
        if response is not None:
            # A 503 of its own (e.g. the outbound queue is down), not degrade mode's.
            assert "Shed under load" not in response["description"], (method, path)


async def test_a_declared_503_keeps_its_meaning_and_adds_the_shed_one(
    make_client: Any, make_settings: Any
) -> None:
    doc = await _document(make_client, make_settings)
    # Admin reads already answer 503 when a backend is down.
    convos = doc["paths"]["/admin/crm/convos"]["get"]["responses"]["503"]
    assert "unavailable" in convos["description"]
    assert "Shed under load" in convos["description"]


async def test_the_edge_sheds_what_the_document_says_and_spares_the_protected(
    make_client: Any, make_settings: Any
) -> None:
    async with make_client(make_settings(degrade_mode="on")) as client:
        # A prefetch header on a protected operation is not a reason to shed it.
        verify = await client.get("/webhooks/wa", headers=PREFETCH)
        assert verify.status_code != 503
        ice = await client.get("/rtc/ice-servers", headers=PREFETCH)
        assert ice.status_code != 503
        # Only GET and HEAD are prefetched by browsers.
        posted = await client.post("/consent", headers=PREFETCH)
        assert posted.status_code != 503
        refused = await client.get("/img/abc/w320.jpg", headers=PREFETCH)
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "overloaded"
        assert "retry-after" in refused.headers
    assert low_priority_kind("/webhooks/wa", [(b"sec-purpose", b"prefetch")], "GET") is None
    assert low_priority_kind("/consent", [(b"sec-purpose", b"prefetch")], "POST") is None
    assert low_priority_kind("/docs", [(b"sec-purpose", b"prefetch")], "GET") == "prefetch"
    for method, path in PROTECTED:
        assert shed_kinds(path, method.upper()) == []
