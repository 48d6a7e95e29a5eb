"""Every operation of the app's own OpenAPI document, fuzzed with schemathesis.

The team rule under test: bad input gets a clear 4xx in the error envelope
``{"error": {"code", "message", "details"}}``, never a 5xx, and stored data survives.

Cases are generated per operation (schema-valid and schema-violating), derandomized so a
failure reproduces, and sent through ``httpx.ASGITransport`` to a fully started embedded app
(SQLite and in-process backends, lifespan run) with the admin key, so admin routes are
exercised past their guard.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from core.consent.subject_proof import derive_subject_key, subject_proof
from core.whatsapp.signature import sign_body
from service.images.facility import ImagesFacility
from service.settings import Settings
from tests.conftest import running_client

ADMIN = {"Authorization": "Bearer test-admin-key"}
WA_SECRET = "fuzz-app-secret"
WA_VERIFY_TOKEN = "fuzz-verify-token"
COOKIE_SECRET = "fuzz-cookie-secret-0123456789abcdef0123"
EXAMPLES_PER_OPERATION = 6
# Pages a person opens from a link (WhatsApp unsubscribe): they refuse with a localized HTML
# page rather than JSON, still with a 4xx status.
HUMAN_PAGES = {"/u/{token}"}
SEEDED_SUBJECT = "fuzz-seeded-subject"
SEEDED_CHOICES = {"analytics": "granted", "email": "denied"}


def _generate(operation: Any, mode: GenerationMode) -> list[Case]:
    cases: list[Case] = []

    query = None
    if operation.path == "/webhooks/wa" and mode is GenerationMode.POSITIVE:
        # The handshake answers only to the configured token; let the rest vary.
        query = {"hub.verify_token": WA_VERIFY_TOKEN}
    strategy = operation.as_strategy(generation_mode=mode, headers=dict(ADMIN), query=query)

    @given(strategy)
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def collect(case: Case) -> None:
        cases.append(case)

    # Unsatisfiable: nothing in the operation can be made schema-invalid (no parameters, or
    # only free strings), so there are no negative cases to send.
    with contextlib.suppress(Unsatisfiable):
        collect()
    return cases


def _httpx_kwargs(case: Case) -> dict[str, Any]:
    sent = case.as_transport_kwargs(base_url="http://testserver", headers=dict(ADMIN))
    kwargs: dict[str, Any] = {
        "method": sent["method"],
        "url": sent["url"],
        "headers": {k: v for k, v in sent.get("headers", {}).items() if k != "Connection"},
        "params": sent.get("params") or None,
    }
    if "json" in sent:
        # The stdlib encoder: generated integers may exceed 64 bits, which orjson refuses.
        kwargs["content"] = json.dumps(sent["json"]).encode()
        kwargs["headers"].setdefault("Content-Type", "application/json")
    elif "data" in sent:
        data = sent["data"]
        if isinstance(data, bytes | str):
            kwargs["content"] = data
        else:
            kwargs["data"] = data
    if sent.get("files"):
        kwargs["files"] = sent["files"]
    return kwargs


def _sign(app: Any, path: str, kwargs: dict[str, Any]) -> None:
    """Sign what the app demands signed, so fuzzed input reaches the code behind the check."""
    if path == "/webhooks/wa" and kwargs["method"] == "POST":
        body = kwargs.get("content", b"")
        kwargs["headers"]["X-Hub-Signature-256"] = sign_body(
            WA_SECRET, body.encode() if isinstance(body, str) else body
        )
    elif path == "/consent/{subject}":
        # The subject's own proof, so writes get past the proof check into validation.
        subject = unquote(urlsplit(kwargs["url"]).path).removeprefix("/consent/")
        key = derive_subject_key(COOKIE_SECRET)
        kwargs["headers"]["X-Consent-Proof"] = subject_proof(subject, key)
    elif path == "/img/{image_id}/{name}":
        params = dict(kwargs["params"] or {})
        if all(isinstance(v, str) for v in params.values()):
            signer = app.state.runtime.facility(ImagesFacility).signer
            url_path = unquote(urlsplit(kwargs["url"]).path)
            params["s"] = signer.signature(url_path, params)
            kwargs["params"] = params


def _envelope_problem(response: httpx.Response) -> str | None:
    if response.status_code < 400:
        return None
    if not response.headers.get("content-type", "").startswith("application/json"):
        return f"content-type {response.headers.get('content-type')!r}"
    try:
        body = response.json()
    except ValueError:
        return "body is not JSON"
    error = body.get("error") if isinstance(body, dict) else None
    if (
        not isinstance(error, dict)
        or set(error) != {"code", "message", "details"}
        or not isinstance(error["code"], str)
        or not isinstance(error["message"], str)
        or not error["message"]
    ):
        return f"not the error envelope: {body!r:.300}"
    return None


async def _fuzz(client: httpx.AsyncClient, mode: GenerationMode) -> tuple[int, list[str]]:
    document = (await client.get("/openapi.json")).json()
    schema = schemathesis.openapi.from_dict(document)
    problems: list[str] = []
    sent = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        for case in _generate(operation, mode):
            kwargs = _httpx_kwargs(case)
            _sign(client.app, operation.path, kwargs)  # type: ignore[attr-defined]
            response = await client.request(**kwargs)
            sent += 1
            where = f"{operation.label} {kwargs['url']} params={kwargs['params']!r:.200}"
            if response.status_code >= 500:
                problems.append(f"{where}: {response.status_code} {response.text[:300]}")
                continue
            if operation.path in HUMAN_PAGES and response.headers.get(
                "content-type", ""
            ).startswith("text/html"):
                continue
            envelope = _envelope_problem(response)
            if envelope is not None:
                problems.append(f"{where}: {response.status_code} {envelope}")
                continue
            try:
                case.validate_response(
                    response,
                    checks=[
                        not_a_server_error,
                        response_schema_conformance,
                        content_type_conformance,
                    ],
                )
            except FailureGroup as exc:
                problems.append(f"{where}: {str(exc)[:600]}")
    return sent, problems


async def _seed(client: httpx.AsyncClient) -> Any:
    response = await client.put(
        f"/admin/consent/{SEEDED_SUBJECT}", json={"choices": SEEDED_CHOICES}, headers=ADMIN
    )
    assert response.status_code == 200, response.text
    return await _stored(client)


async def _stored(client: httpx.AsyncClient) -> Any:
    response = await client.get(f"/consent/{SEEDED_SUBJECT}/events", headers=ADMIN)
    assert response.status_code == 200, response.text
    return response.json()


async def _assert_seed_intact(client: httpx.AsyncClient, seeded: Any) -> None:
    # Same events, and the hash chain over them still verifies.
    after = await _stored(client)
    assert after == seeded
    assert after["verification"]["ok"] is True


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
async def test_every_operation_answers_fuzzed_input_without_5xx(
    make_settings: Callable[..., Settings], mode: GenerationMode
) -> None:
    configured = make_settings(
        whatsapp_app_secret=WA_SECRET,
        whatsapp_verify_token=WA_VERIFY_TOKEN,
        cookie_secret=COOKIE_SECRET,
        # Hundreds of admin calls in a burst: the admin policy (tested elsewhere) must not
        # turn the fuzzed operations into 429s before they reach their handlers.
        ratelimit_policies="admin=1000000/second burst 1000000",
    )
    async with running_client(configured) as client:
        seeded = await _seed(client)
        sent, problems = await _fuzz(client, mode)
        await _assert_seed_intact(client, seeded)
    assert sent > 0
    assert not problems, f"{len(problems)} of {sent} fuzzed requests broke the rule:\n" + "\n".join(
        problems
    )


def _unbounded_integers(
    schema: Any, where: str, components: dict[str, Any], seen: set[str]
) -> list[str]:
    """Integer schemas without a maximum, following ``$ref`` into the components."""
    found: list[str] = []
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str):
            name = ref.rsplit("/", 1)[-1]
            if name not in seen:
                seen.add(name)
                found += _unbounded_integers(components[name], name, components, seen)
        if schema.get("type") == "integer" and not {"maximum", "exclusiveMaximum"} & set(schema):
            found.append(where)
        for key, value in schema.items():
            # Under "not" an integer schema is what the value may NOT be ("a number, not an
            # integer"): nothing there reaches the database.
            if key != "not":
                found += _unbounded_integers(value, f"{where}/{key}", components, seen)
    elif isinstance(schema, list):
        for index, value in enumerate(schema):
            found += _unbounded_integers(value, f"{where}[{index}]", components, seen)
    return found


async def test_every_request_integer_has_an_upper_bound(
    make_settings: Callable[..., Settings],
) -> None:
    """Ids, cursors and counts end up bound to BIGINT columns: an unbounded integer in a
    request model lets ``?after_seq=99999999999999999999`` reach the driver (a 500)."""
    async with running_client(make_settings()) as client:
        document = (await client.get("/openapi.json")).json()
    components = document["components"]["schemas"]
    seen: set[str] = set()
    unbounded: list[str] = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "query":
                    where = f"{method} {path} query {parameter['name']}"
                    unbounded += _unbounded_integers(parameter["schema"], where, components, seen)
            body = operation.get("requestBody", {}).get("content", {})
            for media in body.values():
                unbounded += _unbounded_integers(media["schema"], path, components, seen)
    assert len(seen) > 10  # the request bodies were followed into their components
    assert not unbounded
