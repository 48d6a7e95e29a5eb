"""What /openapi.json states about the consent operations is what their code enforces."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import pytest

from core.consent.model import SUBJECT_MAX_LENGTH, SUBJECT_PATTERN
from service.consent import grammar
from service.settings import Settings

MakeClient = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]
Document = dict[str, Any]


@pytest.fixture
async def document(make_settings: Callable[..., Settings], make_client: MakeClient) -> Document:
    settings = make_settings(consent_banner_version="3", consent_banner_history="1,2=ads,3")
    async with make_client(settings) as client:
        body: Document = (await client.get("/openapi.json")).json()
    return body


def _consent_operations(document: Document) -> list[tuple[str, str, Any]]:
    return [
        (method, path, operation)
        for path, operations in document["paths"].items()
        if path.startswith(("/consent", "/admin/consent"))
        for method, operation in operations.items()
    ]


def _component(document: Document, ref: str) -> Any:
    return document["components"]["schemas"][ref.rsplit("/", 1)[-1]]


def test_every_subject_parameter_states_the_subject_pattern(document: Document) -> None:
    with_subject = [op for _, path, op in _consent_operations(document) if "{subject}" in path]
    assert len(with_subject) == 6
    for operation in with_subject:
        [parameter] = [p for p in operation["parameters"] if p["in"] == "path"]
        schema = parameter["schema"]
        assert schema["pattern"] == SUBJECT_PATTERN
        assert (schema["minLength"], schema["maxLength"]) == (1, SUBJECT_MAX_LENGTH)


def test_minting_documents_its_201(document: Document) -> None:
    responses = document["paths"]["/consent"]["post"]["responses"]
    assert "200" not in responses
    schema = responses["201"]["content"]["application/json"]["schema"]
    assert schema["$ref"].endswith("/MintedConsentOut")


def test_every_success_has_a_body_description(document: Document) -> None:
    for method, path, operation in _consent_operations(document):
        successes = {k: v for k, v in operation["responses"].items() if k.startswith("2")}
        assert len(successes) == 1, (method, path)
        [success] = successes.values()
        assert success.get("content"), (method, path)


ERROR_STATUSES = [
    ("get", "/consent/{subject}", {"401", "403", "422"}),
    ("put", "/consent/{subject}", {"400", "401", "403", "409", "413", "422"}),
    ("delete", "/consent/{subject}", {"401", "403", "409", "422"}),
    ("put", "/admin/consent/{subject}", {"400", "401", "403", "409", "413", "422"}),
    ("post", "/admin/consent/{subject}/proof", {"401", "403", "422"}),
    ("get", "/consent/{subject}/events", {"401", "403", "422"}),
    ("get", "/admin/consent/verify", {"401", "403", "422"}),
    ("get", "/admin/consent/export", {"401", "403", "422"}),
]


def test_the_error_statuses_each_operation_answers_are_listed(document: Document) -> None:
    for method, path, statuses in ERROR_STATUSES:
        listed = set(document["paths"][path][method]["responses"])
        assert statuses <= listed, (method, path, statuses - listed)


def test_choices_name_the_registered_purposes_and_the_configured_versions(
    document: Document,
) -> None:
    body = document["paths"]["/consent/{subject}"]["put"]["requestBody"]
    schema = _component(document, body["content"]["application/json"]["schema"]["$ref"])
    choices = schema["properties"]["choices"]
    assert choices["propertyNames"] == {"enum": list(grammar.PURPOSE_NAMES)}
    [version, null] = schema["properties"]["banner_version"]["anyOf"]
    assert version["enum"] == ["1", "2", "3"] and null == {"type": "null"}
    [region, _] = schema["properties"]["region"]["anyOf"]
    assert region["pattern"] == grammar.REGION


def test_withdrawal_states_its_purpose_list(document: Document) -> None:
    operation = document["paths"]["/consent/{subject}"]["delete"]
    [purposes] = [p for p in operation["parameters"] if p["name"] == "purposes"]
    [text, _] = purposes["schema"]["anyOf"]
    assert text["pattern"] == grammar.PURPOSE_LIST
