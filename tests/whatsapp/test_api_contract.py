"""The CRM, webhook and unsubscribe operations answer exactly what /openapi.json says: every
status of a real session is documented with the schema its body has, and the request models
accept exactly what the document's schemas accept."""

from __future__ import annotations

import re
from typing import Any

import httpx
import jsonschema_rs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field, ValidationError

from core.whatsapp.texts import TEXT_MAX_CHARS
from core.whatsapp.unsubscribe import TOKEN_PATTERN, make_token, read_token
from service.consent import store as consent_store
from service.consent.policy import ConsentPolicy
from service.db.tables.crm import crm_convos, wa_webhook_events
from service.whatsapp.crm_schemas import (
    EMAIL_PATTERN,
    MAX_ID,
    ContactPatch,
    ContactPath,
    ConvoPath,
    EventPath,
    NotePath,
    SendIn,
)
from service.whatsapp.facility import get_whatsapp
from service.whatsapp.send_rules import unsubscribe_url
from tests.whatsapp import payloads as p
from tests.whatsapp.conftest import VERIFY_TOKEN, post_webhook, runtime_of
from tests.whatsapp.dbutil import rows

ADMIN = {"Authorization": "Bearer test-admin-key"}
WA = "905321234567"
TEMPLATE = {"name": "order_update", "language": "tr", "components": []}


class Contract:
    """The running app's document, and a check of one answer against it."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document

    def validator(self, schema: dict[str, Any]) -> jsonschema_rs.Validator:
        root = {**schema, "components": self.document["components"]}
        return jsonschema_rs.validator_for(root, validate_formats=True)

    def body_schema(self, method: str, path: str) -> dict[str, Any]:
        operation = self.document["paths"][path][method]
        schema: dict[str, Any] = operation["requestBody"]["content"]["application/json"]["schema"]
        return schema

    def check(self, method: str, path: str, response: httpx.Response) -> None:
        operation = self.document["paths"][path][method]
        documented = operation["responses"].get(str(response.status_code))
        assert documented is not None, (method, path, response.status_code, response.text)
        if response.status_code == 204:
            return
        media_type = response.headers["content-type"].split(";")[0]
        content = documented.get("content", {})
        assert media_type in content, (method, path, response.status_code, media_type)
        if media_type == "application/json":
            errors = list(
                self.validator(content[media_type]["schema"]).iter_errors(response.json())
            )
            assert not errors, (method, path, response.status_code, [str(e) for e in errors])


async def _contract(client: httpx.AsyncClient) -> Contract:
    return Contract((await client.get("/openapi.json")).json())


async def _call(
    contract: Contract,
    client: httpx.AsyncClient,
    method: str,
    template: str,
    path: str | None = None,
    **kwargs: Any,
) -> httpx.Response:
    response = await client.request(method, path or template, headers=ADMIN, **kwargs)
    contract.check(method.lower(), template, response)
    return response


async def test_a_whole_session_answers_as_documented(client: httpx.AsyncClient) -> None:
    contract = await _contract(client)
    runtime = runtime_of(client)
    now = int(runtime.clock.now())
    body = p.inbound(WA, "Ayşe", p.text(WA, "wamid.IN1", "Selam", ts=now))
    contract.check("post", "/webhooks/wa", await post_webhook(client, body))
    contract.check("post", "/webhooks/wa", await post_webhook(client, {"object": "x"}))
    [convo] = await rows(runtime.db, crm_convos)
    async with runtime.db.begin() as conn:
        await consent_store.record(
            conn,
            f"contact:{convo.contact_id}",
            {"whatsapp": "granted"},
            source="admin",
            now=runtime.clock.now(),
            policy=runtime.facility(ConsentPolicy),
        )
    convo_path, contact_path = (
        f"/admin/crm/convos/{convo.id}",
        f"/admin/crm/contacts/{convo.contact_id}",
    )
    convos = "/admin/crm/convos/{convo_id}"
    contacts = "/admin/crm/contacts/{contact_id}"
    calls: list[tuple[str, str, str | None, dict[str, Any]]] = [
        ("GET", "/admin/crm/convos", None, {}),
        ("GET", "/admin/crm/convos", None, {"params": {"cursor": "forged"}}),
        ("GET", convos, convo_path, {}),
        ("GET", convos, "/admin/crm/convos/999", {}),
        ("GET", convos + "/messages", convo_path + "/messages", {}),
        (
            "GET",
            convos + "/messages",
            convo_path + "/messages",
            {"params": {"before": 9, "after": 1}},
        ),
        ("POST", convos + "/read", convo_path + "/read", {}),
        ("POST", convos + "/close", convo_path + "/close", {}),
        ("POST", convos + "/reopen", convo_path + "/reopen", {}),
        ("GET", "/admin/crm/contacts", None, {"params": {"q": "ayş"}}),
        ("PATCH", contacts, contact_path, {"json": {"email": "a@b.example", "phone": None}}),
        ("PATCH", contacts, contact_path, {"content": b"{"}),
        ("POST", contacts + "/notes", contact_path + "/notes", {"json": {"body": "VIP"}}),
        ("GET", contacts + "/notes", contact_path + "/notes", {}),
        ("GET", contacts + "/notes", "/admin/crm/contacts/999/notes", {}),
        ("POST", "/admin/wa/send", None, {"json": {"convo_id": convo.id, "text": "Merhaba"}}),
        ("POST", "/admin/wa/send", None, {"json": {"convo_id": convo.id, "template": TEMPLATE}}),
        ("POST", "/admin/wa/send", None, {"json": {"convo_id": 999, "text": "x"}}),
        (
            "POST",
            "/admin/wa/send",
            None,
            {"json": {"convo_id": convo.id, "text": "x" * TEXT_MAX_CHARS, "marketing": True}},
        ),
        ("GET", convos, convo_path, {}),
    ]
    for method, template, path, kwargs in calls:
        await _call(contract, client, method, template, path, **kwargs)

    note = (await client.get(contact_path + "/notes", headers=ADMIN)).json()["items"][0]
    await _call(
        contract, client, "DELETE", "/admin/crm/notes/{note_id}", f"/admin/crm/notes/{note['id']}"
    )
    await _call(
        contract, client, "DELETE", "/admin/crm/notes/{note_id}", f"/admin/crm/notes/{note['id']}"
    )
    events = [e.id for e in await rows(runtime.db, wa_webhook_events)]
    replay = "/admin/wa/events/{event_id}/replay"
    for event_id in (*events, 999):
        await _call(contract, client, "POST", replay, f"/admin/wa/events/{event_id}/replay")

    handshake = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "42"}
    for params in (
        handshake,
        {**handshake, "hub.verify_token": "no"},
        {**handshake, "hub.challenge": ""},
    ):
        contract.check("get", "/webhooks/wa", await client.get("/webhooks/wa", params=params))
    link = unsubscribe_url(get_whatsapp(runtime), convo.contact_id).rsplit("/u/", 1)[1]
    for token in (link, "1.AAAAAAAAAAAAAAAA", "x"):
        for method in ("GET", "POST"):
            contract.check(
                method.lower(), "/u/{token}", await client.request(method, f"/u/{token}")
            )
    await _call(contract, client, "DELETE", contacts, contact_path)
    await _call(contract, client, "DELETE", contacts, contact_path)


SEND_BODIES: list[dict[str, Any]] = [
    {"convo_id": 1, "text": "a"},
    {"convo_id": 1, "template": TEMPLATE},
    {"convo_id": 1, "text": "a", "template": None},
    {"convo_id": 1, "text": None, "template": TEMPLATE},
    {"convo_id": 1, "text": "a", "marketing": True},
    {"convo_id": 1},
    {"convo_id": 1, "text": None},
    {"convo_id": 1, "text": None, "template": None},
    {"convo_id": 1, "text": "a", "template": TEMPLATE},
    {"convo_id": 1, "text": ""},
    {"convo_id": 0, "text": "a"},
    {"convo_id": MAX_ID + 1, "text": "a"},
    {"convo_id": 1, "text": "a", "extra": 1},
    {"convo_id": 1, "template": {**TEMPLATE, "components": [{"n": 2**64 - 1, "f": 0.5}]}},
    {"convo_id": 1, "template": {**TEMPLATE, "components": [{"n": 2**64}]}},
    {"convo_id": 1, "template": {**TEMPLATE, "components": [{"n": -(2**63) - 1}]}},
    {"convo_id": 1, "template": {**TEMPLATE, "components": [{"a": [{"b": [True, None]}]}]}},
    {"convo_id": 1, "template": {**TEMPLATE, "components": ["not an object"]}},
]
PATCH_BODIES: list[dict[str, Any]] = [
    {},
    {"name": "Ayşe"},
    {"email": None, "phone": None},
    {"locale": "de"},
    {"name": None},
    {"locale": None},
    {"locale": "fr"},
    {"name": ""},
    {"email": "not-an-email"},
    {"wa_id": "1"},
]


def _accepted(model: type[BaseModel], body: dict[str, Any]) -> bool:
    try:
        model.model_validate(body)
    except ValidationError:
        return False
    # What the handler refuses beyond the model (name and locale cannot be cleared).
    return not any(body.get(key, "") is None for key in ("name", "locale"))


@pytest.mark.parametrize(
    ("method", "path", "model", "body"),
    [("post", "/admin/wa/send", SendIn, body) for body in SEND_BODIES]
    + [("patch", "/admin/crm/contacts/{contact_id}", ContactPatch, body) for body in PATCH_BODIES],
)
async def test_the_body_schema_accepts_what_the_code_accepts(
    client: httpx.AsyncClient, method: str, path: str, model: type[BaseModel], body: dict[str, Any]
) -> None:
    contract = await _contract(client)
    documented = contract.validator(contract.body_schema(method, path)).is_valid(body)
    assert documented == _accepted(model, body)


def test_the_email_pattern_means_the_same_to_every_reader() -> None:
    """``\\s`` in the pattern would mean one set to pydantic and another to a JSON Schema
    (ECMAScript) reader; spelled out, every reader refuses the same characters, and pydantic
    the same ones as before."""

    class Before(BaseModel):
        email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

    class Now(BaseModel):
        email: str = Field(pattern=EMAIL_PATTERN)

    documented = jsonschema_rs.validator_for({"type": "string", "pattern": EMAIL_PATTERN})
    differ = []
    for code in range(0x10000):
        if 0xD800 <= code < 0xE000:
            continue
        email = f"a{chr(code)}b@c.d"
        verdicts = {_valid(Before, email), _valid(Now, email), documented.is_valid(email)}
        if len(verdicts) > 1:
            differ.append(hex(code))
    assert differ == []


def _valid(model: type[BaseModel], email: str) -> bool:
    try:
        model.model_validate({"email": email})
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize("model", [ConvoPath, ContactPath, NotePath, EventPath])
@pytest.mark.parametrize(
    ("raw", "names"),
    [
        ("1", 1),
        ("007", 7),
        (str(MAX_ID), MAX_ID),
        ("0", None),
        (str(MAX_ID + 1), None),
        ("-1", None),
        ("+7", None),
        (" 7", None),
        ("1_0", None),
        ("1.0", None),
        ("1e3", None),
        ("\u0661\u0662", None),
        ("abc", None),
    ],
)
def test_path_ids_are_the_documented_integers(
    model: type[BaseModel], raw: str, names: int | None
) -> None:
    """The model that documents a path id (an integer in [1, MAX_ID]) is the one that reads it:
    decimal digits only, so no reading of int() names another id."""
    [field] = model.model_fields
    try:
        parsed = getattr(model.model_validate({field: raw}), field)
    except ValidationError:
        parsed = None
    assert parsed == names


async def test_path_parameters_carry_the_models_schemas(client: httpx.AsyncClient) -> None:
    contract = await _contract(client)
    for path, operations in contract.document["paths"].items():
        if not path.startswith(("/admin/crm", "/admin/wa", "/u/")):
            continue
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter["in"] != "path":
                    continue
                schema = parameter["schema"]
                if parameter["name"] == "token":
                    assert schema["pattern"] == TOKEN_PATTERN
                else:
                    assert (schema["type"], schema["minimum"], schema["maximum"]) == (
                        "integer",
                        1,
                        MAX_ID,
                    )
                assert "404" in operation["responses"], path


@given(st.text(min_size=1, max_size=40), st.integers(min_value=0, max_value=2**64 - 1))
@settings(max_examples=200)
def test_every_unsubscribe_token_matches_the_documented_pattern(
    secret: str, contact_id: int
) -> None:
    token = make_token(secret, contact_id)
    assert re.fullmatch(TOKEN_PATTERN, token)
    assert read_token(secret, token) == contact_id


@given(st.text(max_size=40))
@settings(max_examples=300)
def test_a_token_outside_the_pattern_names_nobody(token: str) -> None:
    if re.fullmatch(TOKEN_PATTERN, token) is None:
        assert read_token("secret", token) is None
