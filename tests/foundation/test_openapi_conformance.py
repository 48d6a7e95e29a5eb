"""The API description is exact: schemathesis, every check, over every operation.

The same run as ``schemathesis run /openapi.json --checks all`` with the admin key set:
documented status codes, response schemas, content types and headers, ``Allow`` on 405,
schema-invalid requests refused and schema-valid ones accepted. The seed is fixed and
generation derandomized, so CI always sends the same cases; a failure is listed with its
operation, the check and a ``curl`` reproducing it.

The app runs in-process (schemathesis starts its lifespan); ``_Signing`` signs what the app
demands signed (webhook bodies, consent subject proofs, image URLs) so generated requests reach
the validation behind the signature check.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import schemathesis
from pydantic import BaseModel, ConfigDict, Field
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, events, from_schema
from schemathesis.python import asgi
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Message, Receive, Scope, Send

from core.consent.subject_proof import derive_subject_key, subject_proof
from core.whatsapp.signature import sign_body
from service.app import create_app
from service.db import Database
from service.db.migrate import migrate
from service.endpoint import api
from service.errors import EXCEPTION_HANDLERS
from service.images.facility import ImagesFacility
from service.openapi import (
    RULES_KEY,
    RUNTIME_SCHEMA_KEY,
    build_openapi,
    runtime_enum,
    runtime_schema,
    validation_rules,
)
from service.responses import json_response
from service.routing import PathRoute, merge_same_path
from service.settings import Settings
from tests.conftest import running_client

ADMIN_KEY = "test-admin-key"
WA_SECRET = "conformance-app-secret"
WA_VERIFY_TOKEN = "conformance-verify-token"
COOKIE_SECRET = "conformance-cookie-secret-0123456789abcdef"
SEED = 20240612
#: Examples per operation and phase; the coverage phase adds its own boundary cases on top.
#: ``KERVAN_CONFORMANCE_EXAMPLES=100`` searches as deep as the schemathesis CLI does.
MAX_EXAMPLES = int(os.environ.get("KERVAN_CONFORMANCE_EXAMPLES", "50"))
SEEDED_SUBJECT = "conformance-seeded-subject"

_CONSENT_SUBJECT = re.compile(r"^/consent/([^/]+)$")
_IMAGE_VARIANT = re.compile(r"^/img/[^/]+/[^/]+$")


class _Signing:
    """Signs requests the way a legitimate caller would, before the app sees them."""

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self.key = derive_subject_key(COOKIE_SECRET)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        headers = MutableHeaders(scope=scope)
        subject = _CONSENT_SUBJECT.match(path)
        if subject is not None:
            headers["X-Consent-Proof"] = subject_proof(subject.group(1), self.key)
        elif _IMAGE_VARIANT.match(path):
            self._sign_image_url(scope)
        elif path == "/webhooks/wa" and scope["method"] == "POST":
            body = await _read_all(receive)
            headers["X-Hub-Signature-256"] = sign_body(WA_SECRET, body)
            receive = _replay(body)
        await self.app(scope, receive, send)

    def _sign_image_url(self, scope: Scope) -> None:
        request = Request(scope)
        query = request.query_params
        if len(query.keys()) != len(query.multi_items()):
            return  # repeated parameters are refused before the signature matters
        params = {k: v for k, v in query.items() if k != "s"}
        signer = self.app.state.runtime.facility(ImagesFacility).signer
        params["s"] = signer.signature(request.url.path, params)
        scope["query_string"] = urlencode(params).encode()


async def _read_all(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


@dataclass(frozen=True)
class Finding:
    operation: str
    phase: str
    check: str
    title: str
    message: str
    received: str
    curl: str

    def __str__(self) -> str:
        message = _shorten(self.message.strip(), 600).replace("\n", "\n    ")
        return (
            f"{self.operation} [{self.phase}] {self.check}: {self.title}\n"
            f"    {message}\n    answered: {self.received}\n    {_shorten(self.curl, 400)}"
        )


def _received(response: schemathesis.Response | None) -> str:
    if response is None:
        return "no response"
    body = response.content[:300].decode("utf-8", "replace")
    return f"{response.status_code} {body}"


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _config() -> SchemathesisConfig:
    return SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            # No replay of failures stored by earlier runs: every run sends the same cases.
            "cache": {"enabled": False},
            "headers": {"Authorization": f"Bearer {ADMIN_KEY}"},
            "checks": {"enabled": True},
            "generation": {
                "mode": "all",
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",
            },
            "phases": {"stateful": {"enabled": False}},
        }
    )


def _breaks_a_stated_rule(
    document: dict[str, Any], operation: str, response: schemathesis.Response | None
) -> bool:
    """A schema-valid request refused with 422 for a rule the operation states in words
    (``x-validation-rules``: one field against another, against the clock), which JSON Schema
    cannot express and so schemathesis cannot avoid generating."""
    if response is None or response.status_code != 422:
        return False
    method, _, path = operation.partition(" ")
    rules = document["paths"].get(path, {}).get(method.lower(), {}).get(RULES_KEY, [])
    text = response.content.decode("utf-8", "replace")
    return any(rule in text for rule in rules)


def _findings(
    stream: Iterator[events.EngineEvent], document: dict[str, Any]
) -> tuple[int, list[Finding], list[str]]:
    findings: dict[tuple[str, str, str, str], Finding] = {}
    errors: list[str] = []
    cases = 0
    for event in stream:
        if isinstance(event, events.ScenarioFinished):
            recorder = event.recorder
            cases += len(recorder.cases)
            for case_id, nodes in recorder.checks.items():
                interaction = recorder.interactions.get(case_id)
                response = interaction.response if interaction is not None else None
                for node in nodes:
                    if node.status != Status.FAILURE or node.failure_info is None:
                        continue
                    failure = node.failure_info.failure
                    operation = failure.operation or recorder.label
                    if node.name == "positive_data_acceptance" and _breaks_a_stated_rule(
                        document, operation, response
                    ):
                        continue
                    first_line = failure.message.strip().splitlines()[0] if failure.message else ""
                    key = (operation, node.name, failure.title, first_line)
                    findings.setdefault(
                        key,
                        Finding(
                            operation=operation,
                            phase=event.phase.value,
                            check=node.name,
                            title=failure.title,
                            message=failure.message,
                            received=_received(response),
                            curl=node.failure_info.code_sample,
                        ),
                    )
        elif isinstance(event, events.NonFatalError):
            errors.append(f"{event.label}: {event.info}")
        elif isinstance(event, events.FatalError):
            errors.append(f"fatal: {event.exception!r}")
    return cases, sorted(findings.values(), key=lambda f: (f.operation, f.check)), errors


def _seed(app: Any) -> None:
    with asgi.get_client(app) as client:
        response = client.put(
            f"http://{asgi.HOST}/admin/consent/{SEEDED_SUBJECT}",
            json={"choices": {"analytics": "granted"}},
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        )
        assert response.status_code == 200, response.text


@pytest.mark.slow
# A fixed, seeded set of cases for every operation: the run's length is the machine's speed.
# Under a full parallel suite on a loaded 2-core machine it passed the default 120 s guard
# (a hang guard, not a time limit), so this test has a guard of its own.
@pytest.mark.timeout(600)
def test_every_operation_conforms_to_the_document(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(
        whatsapp_app_secret=WA_SECRET,
        whatsapp_verify_token=WA_VERIFY_TOKEN,
        cookie_secret=COOKIE_SECRET,
        # Thousands of admin calls in a burst: the admin policy (tested elsewhere) must not turn
        # the generated cases into 429s before they reach their handlers.
        ratelimit_policies="admin=1000000/second burst 1000000",
        # Answers must not depend on background work finishing in time, and nothing generated
        # may reach a real provider: no worker runs the jobs the cases enqueue.
        queue_embedded_worker=False,
        whatsapp_graph_base_url="http://127.0.0.1:9",
    )
    db = Database(settings.database_url)

    async def prepare() -> None:
        await migrate(db)
        await db.dispose()

    asyncio.run(prepare())
    app = _Signing(create_app(settings))
    try:
        schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=_config())
        _seed(app)
        cases, findings, errors = _findings(from_schema(schema).execute(), schema.raw_schema)
    finally:
        asgi.shutdown_lifespans()
    assert not errors, "\n".join(errors)
    assert cases > 0
    if findings:
        pytest.fail(
            f"{len(findings)} conformance failures in {cases} cases:\n\n"
            + "\n\n".join(str(f) for f in findings),
            pytrace=False,
        )


# ---------------------------------------------------------------- the generator's own rules


class _Body(BaseModel):
    name: str = Field(max_length=8)


class _Id(BaseModel):
    item_id: str = Field(pattern=r"^[a-z]{1,8}$")


class _Out(BaseModel):
    ok: bool


def _endpoint(**declared: Any) -> Callable[[Request], Awaitable[Response]]:
    @api("x", **declared)
    async def endpoint(request: Request) -> Response:
        return json_response({"ok": True, "method": request.method})

    return endpoint


def _operations(document: dict[str, Any], path: str) -> dict[str, Any]:
    operations: dict[str, Any] = document["paths"][path]
    return operations


def test_declarations_imply_their_error_statuses() -> None:
    routes: list[BaseRoute] = [
        Route("/items", _endpoint(body=_Body, response=_Out), methods=["POST"]),
        Route("/items/{item_id}", _endpoint(path=_Id, response=_Out, admin=True), methods=["GET"]),
        Route("/ping", _endpoint(response=_Out), methods=["GET"]),
    ]
    document = build_openapi(routes, title="t", version="1", app_limit_exempt=["/ping"])
    post = _operations(document, "/items")["post"]["responses"]
    assert set(post) == {"200", "400", "413", "422", "429", "503"}
    assert post["429"]["headers"]["Retry-After"]["required"] is True
    assert post["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }
    get = _operations(document, "/items/{item_id}")["get"]
    assert set(get["responses"]) == {"200", "401", "403", "422", "429", "503"}
    assert "WWW-Authenticate" in get["responses"]["401"]["headers"]
    assert get["parameters"][0]["schema"]["pattern"] == "^[a-z]{1,8}$"
    # Exempt from the app-wide limit and declaring no limit of its own: only degrade mode
    # may refuse it (a GET can be a prefetch, shed under load).
    assert set(_operations(document, "/ping")["get"]["responses"]) == {"200", "503"}


def test_responses_of_the_route_win_and_non_json_successes_have_a_schema() -> None:
    text = _endpoint(media_type="text/plain", responses={403: "Not for you", 304: "Unchanged"})
    image = _endpoint(media_type="image/*")
    page = _endpoint(media_type="text/html", responses={404: "Unknown link (a page)"})
    document = build_openapi(
        [
            Route("/t", text, methods=["GET"]),
            Route("/i", image, methods=["GET"]),
            Route("/p", page, methods=["GET"]),
        ],
        title="t",
        version="1",
        app_limit_exempt=[],
    )
    responses = _operations(document, "/t")["get"]["responses"]
    assert responses["200"]["content"] == {"text/plain": {"schema": {"type": "string"}}}
    assert responses["403"]["description"] == "Not for you"
    assert responses["304"] == {"description": "Unchanged"}
    image_ok = _operations(document, "/i")["get"]["responses"]["200"]["content"]
    assert image_ok == {"image/*": {"schema": {"type": "string", "format": "binary"}}}
    # A page refuses with a page; the rate limiter in front of it still answers in JSON.
    page_responses = _operations(document, "/p")["get"]["responses"]
    assert set(page_responses["404"]["content"]) == {"text/html"}
    assert set(page_responses["429"]["content"]) == {"application/json"}


class _Pick(BaseModel):
    color: str = Field(
        max_length=16, json_schema_extra=runtime_enum("test_colors", lambda app: app.colors)
    )


def test_runtime_enums_list_the_running_apps_values() -> None:
    routes = [Route("/pick", _endpoint(body=_Pick), methods=["POST"])]
    running = SimpleNamespace(colors=["red", "blue", "red"])
    for app, expected in ((running, ["blue", "red"]), (None, None)):
        document = build_openapi(routes, title="t", version="1", app=app)
        schema = document["components"]["schemas"]["_Pick"]["properties"]["color"]
        assert schema.get("enum") == expected
        assert schema["maxLength"] == 16 and RUNTIME_SCHEMA_KEY not in schema


class _Name(BaseModel):
    name: str = Field(
        max_length=32,
        json_schema_extra=runtime_schema("test_names", lambda app: {"pattern": app.pattern}),
    )


def test_runtime_schemas_merge_the_running_apps_keywords() -> None:
    routes = [Route("/name/{name}", _endpoint(path=_Name), methods=["GET"])]
    running = SimpleNamespace(pattern="^[a-z]+$")
    document = build_openapi(routes, title="t", version="1", app=running)
    schema = _operations(document, "/name/{name}")["get"]["parameters"][0]["schema"]
    assert schema["pattern"] == "^[a-z]+$" and schema["maxLength"] == 32


class _Period(BaseModel):
    model_config = ConfigDict(json_schema_extra=validation_rules("'to' is later than 'from'"))

    start: int = Field(alias="from", ge=0, le=10)
    to: int = Field(ge=0, le=10)


class _Event(BaseModel):
    model_config = ConfigDict(json_schema_extra=validation_rules("'ts' is near the clock"))

    ts: float


class _Events(BaseModel):
    events: list[_Event] = Field(max_length=10)


def test_rules_beyond_the_schema_are_listed_on_their_operations() -> None:
    routes = [
        Route("/export", _endpoint(query=_Period, media_type="text/csv, application/x-ndjson")),
        Route("/events", _endpoint(body=_Events), methods=["POST"]),
    ]
    document = build_openapi(routes, title="t", version="1")
    export = _operations(document, "/export")["get"]
    assert export[RULES_KEY] == ["'to' is later than 'from'"]
    assert "'to' is later than 'from'" in export["description"]
    assert set(export["responses"]["200"]["content"]) == {"text/csv", "application/x-ndjson"}
    # Found inside the body's nested model, and listed on the operation only.
    assert _operations(document, "/events")["post"][RULES_KEY] == ["'ts' is near the clock"]
    assert "x-kervan-rules" not in str(document["components"])


async def test_a_path_of_several_routes_answers_405_with_all_its_methods() -> None:
    read, write = _endpoint(path=_Id, response=_Out), _endpoint(path=_Id, body=_Body)
    routes = merge_same_path(
        [
            Route("/items/{item_id}", read, methods=["GET"]),
            Route("/other", _endpoint(), methods=["GET"]),
            Route("/items/{item_id}", write, methods=["PUT"]),
        ]
    )
    assert [type(route) for route in routes] == [PathRoute, PathRoute]
    assert [len(route.routes) for route in routes if isinstance(route, PathRoute)] == [2, 1]
    app = Starlette(routes=routes, exception_handlers=EXCEPTION_HANDLERS)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        refused = await client.delete("/items/abc")
        # A single route's 405 too lists its methods sorted, the same in every process.
        alone = await client.post("/other")
        got = await client.get("/items/abc")
        put = await client.put("/items/abc", json={"name": "n"})
        head = await client.head("/items/abc")
    assert refused.status_code == 405
    assert refused.headers["Allow"] == "GET, HEAD, PUT"
    assert (alone.status_code, alone.headers["Allow"]) == (405, "GET, HEAD")
    assert refused.json()["error"]["code"] == "method_not_allowed"
    assert (got.json()["method"], put.json()["method"], head.status_code) == ("GET", "PUT", 200)
    # Each method keeps its own declaration in the document.
    document = build_openapi(routes, title="t", version="1")
    operations = _operations(document, "/items/{item_id}")
    assert set(operations) == {"get", "put"}
    assert "requestBody" in operations["put"] and "requestBody" not in operations["get"]


async def test_every_documented_path_answers_405_naming_its_documented_methods(
    make_settings: Callable[..., Settings],
) -> None:
    async with running_client(make_settings()) as client:
        document = (await client.get("/openapi.json")).json()
        wrong: list[str] = []
        for path, operations in document["paths"].items():
            url = re.sub(r"{[^}]+}", "x", path)
            answer = await client.request("TRACE", url)
            documented = {method.upper() for method in operations}
            if "GET" in documented:
                documented.add("HEAD")
            allowed = {m.strip() for m in answer.headers.get("allow", "").split(",") if m}
            if answer.status_code != 405 or allowed != documented:
                wrong.append(f"{path}: {answer.status_code} Allow={sorted(allowed)}")
            elif answer.json()["error"]["code"] != "method_not_allowed":
                wrong.append(f"{path}: {answer.text[:200]}")
    assert len(document["paths"]) > 20
    assert wrong == []
