"""OpenAPI 3.1 generated from the pydantic models that endpoints declare with ``@api``
(``service/endpoint.py``)."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.routing import BaseRoute, Mount, Route

from service.overload.priority import shed_kinds
from service.routing import PathRoute

HTML = "text/html"
_COMPONENT_REF = "#/components/schemas/"
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {},
            },
        }
    },
}


@dataclass
class ApiSpec:
    summary: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    #: Constraints of the path parameters (patterns, lengths), one field per parameter.
    path: type[BaseModel] | None = None
    #: The status of a path value outside those constraints: 422 (a malformed request), or 404
    #: where such a value can only name nothing (ids: the route answers "no such ..." for both).
    bad_path: int = 422
    response: type[BaseModel] | None = None
    status: int = 200
    tags: list[str] = field(default_factory=list)
    responses: dict[int, str] = field(default_factory=dict)
    media_type: str = "application/json"
    admin: bool = False


#: Marks a schema whose constraints only the running app knows (see ``runtime_schema``).
RUNTIME_SCHEMA_KEY = "x-kervan-runtime-schema"
RuntimeKeywords = Callable[[Any], dict[str, Any]]
_RUNTIME_KEYWORDS: dict[str, RuntimeKeywords] = {}


def runtime_schema(name: str, keywords: RuntimeKeywords) -> dict[str, Any]:
    """``json_schema_extra`` for a field whose constraints come from settings.

    The lockout rules in force, the widths of the image ladder, the banner versions of the
    consent policy: a static model cannot state them, yet the code refuses other values. The
    document built for a running app (``build_openapi(..., app=app)``) merges ``keywords(app)``
    (``{"enum": [...]}``, ``{"pattern": ...}``) into the field's schema, so a client (and
    schemathesis) knows exactly what is accepted; without an app the field keeps its static
    schema.
    """
    _RUNTIME_KEYWORDS[name] = keywords
    return {RUNTIME_SCHEMA_KEY: name}


def runtime_enum(name: str, values: Callable[[Any], Iterable[str]]) -> dict[str, Any]:
    """``runtime_schema`` of a field that accepts one of ``values(app)``."""

    def keywords(app: Any) -> dict[str, Any]:
        listed = sorted(set(values(app)))
        return {"enum": listed} if listed else {}

    return runtime_schema(name, keywords)


def _resolve_runtime_schemas(node: Any, app: Any) -> None:
    if isinstance(node, dict):
        name = node.pop(RUNTIME_SCHEMA_KEY, None)
        if name is not None and app is not None:
            try:
                keywords = _RUNTIME_KEYWORDS[name](app)
            # The app is not started (no runtime, no facility yet): the static schema stays,
            # and the caller does not keep this document (``runtime_started``).
            except (AttributeError, LookupError):
                keywords = {}
            node.update(keywords)
        for value in node.values():
            _resolve_runtime_schemas(value, app)
    elif isinstance(node, list):
        for value in node:
            _resolve_runtime_schemas(value, app)


#: Rules of a request that JSON Schema cannot state (see ``validation_rules``): the marker on
#: a model's schema, and where each operation holding such a model lists them.
_RULES_MARK = "x-kervan-rules"
RULES_KEY = "x-validation-rules"


def validation_rules(*rules: str) -> dict[str, Any]:
    """``json_schema_extra`` of a model with rules JSON Schema cannot state.

    One field against another ("'to' must be later than 'from'"), a value against the server's
    clock. Every operation whose query, path or body holds the model lists the rules (in
    ``x-validation-rules`` and its description); the code refuses a request that breaks one with
    422, naming the rule in words that contain the rule's text, so a client (and the conformance
    test) can tell such a refusal from an undocumented one.
    """
    return {_RULES_MARK: list(rules)}


def _rules_in(node: Any, components: dict[str, Any], seen: set[str]) -> list[str]:
    """The validation rules a schema holds, following ``$ref`` into the components."""
    found: list[str] = []
    if isinstance(node, dict):
        found += node.get(_RULES_MARK, [])
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_COMPONENT_REF):
            name = ref.removeprefix(_COMPONENT_REF)
            if name not in seen:
                seen.add(name)
                found += _rules_in(components.get(name), components, seen)
        for key, value in node.items():
            if key != _RULES_MARK:
                found += _rules_in(value, components, seen)
    elif isinstance(node, list):
        for value in node:
            found += _rules_in(value, components, seen)
    return found


def _strip_rules(node: Any) -> None:
    if isinstance(node, dict):
        node.pop(_RULES_MARK, None)
        for value in node.values():
            _strip_rules(value)
    elif isinstance(node, list):
        for value in node:
            _strip_rules(value)


# Starlette writes typed path parameters as {name:int}; OpenAPI wants {name} plus a schema.
_CONVERTOR = re.compile(r"{([A-Za-z_][A-Za-z0-9_]*):[A-Za-z_]+}")
_CONVERTOR_TYPES = {"IntegerConvertor": "integer", "FloatConvertor": "number"}


def _iter_routes(routes: Iterable[BaseRoute], prefix: str = "") -> Iterable[tuple[str, Route]]:
    for route in routes:
        if isinstance(route, Mount):
            yield from _iter_routes(route.routes, prefix + route.path)
        elif isinstance(route, PathRoute):
            # Each endpoint of a merged path keeps its own declaration.
            yield from _iter_routes(route.routes, prefix)
        elif isinstance(route, Route):
            yield prefix + route.path, route


def _component_schemas(
    specs: Sequence[ApiSpec],
) -> tuple[dict[type[BaseModel], dict[str, Any]], dict[str, Any]]:
    """The schema of every declared model and the component schemas they point into.

    One pydantic pass over all models together: two features may each name a model
    ``RuleOut``, and pydantic then gives each its own module-qualified component name
    instead of one silently replacing the other. Body and response models are referenced
    (``{"$ref": ...}``); query and path models are spelled out (their fields become
    parameters), and only what their fields refer to (an enum, say) stays a component.
    """
    referenced = {m for spec in specs for m in (spec.body, spec.response) if m is not None}
    models = list(
        dict.fromkeys(
            m
            for spec in specs
            for m in (spec.body, spec.response, spec.query, spec.path)
            if m is not None
        )
    )
    if not models:
        return {}, {}
    refs, top = models_json_schema(
        [(model, "validation") for model in models],
        ref_template=_COMPONENT_REF + "{model}",
    )
    components: dict[str, Any] = top.get("$defs", {})
    schemas: dict[type[BaseModel], dict[str, Any]] = {}
    for model in models:
        ref = refs[(model, "validation")]
        if model in referenced:
            schemas[model] = ref
        else:
            schemas[model] = components.pop(ref["$ref"].rsplit("/", 1)[-1])
    return schemas, components


def _query_parameters(schema: dict[str, Any]) -> list[dict[str, Any]]:
    required = set(schema.get("required", []))
    return [
        {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": prop,
            **({"description": prop["description"]} if "description" in prop else {}),
        }
        for name, prop in schema.get("properties", {}).items()
    ]


#: Statuses every operation may answer because of how it is declared, not what it does.
BAD_BODY = "The body is missing or is not JSON"
BODY_TOO_LARGE = "The body exceeds the size limit"
INVALID = "Validation failed: details lists every failing field"
ADMIN_UNAUTHORIZED = "Admin credentials missing or wrong"
ADMIN_DISABLED = "Admin access is disabled (no admin key configured)"
RATE_LIMITED = "Rate limited: retry after Retry-After seconds"
UNAVAILABLE = (
    "A backend this operation needs (database, Redis, the rate limiter) is unavailable; retry later"
)

_RETRY_AFTER = {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}
_RESPONSE_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"description": "The admin scheme", "schema": {"type": "string"}}},
    429: {
        "Retry-After": {**_RETRY_AFTER, "required": True},
        "RateLimit": {
            "description": "Remaining quota per policy (IETF RateLimit fields)",
            "schema": {"type": "string"},
        },
        "RateLimit-Policy": {
            "description": "The policies that apply (IETF RateLimit fields)",
            "schema": {"type": "string"},
        },
    },
    503: {"Retry-After": _RETRY_AFTER},
}


def _implied_statuses(spec: ApiSpec, *, rate_limited: bool) -> dict[int, str]:
    """The error statuses the declaration implies: parsing, admin guard, rate limits."""
    implied: dict[int, str] = {}
    if spec.body is not None:
        implied[400] = BAD_BODY
        implied[413] = BODY_TOO_LARGE
    if (
        spec.body is not None
        or spec.query is not None
        or (spec.path is not None and spec.bad_path == 422)
    ):
        implied[422] = INVALID
    if spec.admin:
        implied[401] = ADMIN_UNAUTHORIZED
        implied[403] = ADMIN_DISABLED
    if rate_limited or spec.admin:
        implied[429] = RATE_LIMITED
        # A policy may fail closed when its backend is down (configurable per policy).
        implied[503] = UNAVAILABLE
    return implied


def _error_response(status: int, description: str) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    if status in _RESPONSE_HEADERS:
        response["headers"] = _RESPONSE_HEADERS[status]
    return response


#: The extension naming the degrade-mode shed kinds of an operation (``service/overload``).
SHED_KEY = "x-kervan-shed"
SHED = (
    "Shed under load (degrade mode: {kinds}); nothing was done, retry after `Retry-After` "
    "seconds (error code `overloaded`)"
)


def _add_shed_response(op: dict[str, Any], kinds: list[str]) -> None:
    """The 503 degrade mode answers this operation with, merged with a declared 503."""
    shed = SHED.format(kinds=", ".join(kinds))
    responses: dict[str, Any] = op["responses"]
    declared = responses.get("503")
    if declared is None:
        response = _error_response(503, shed)
        # Always sent with a shed 503 (a backend's 503 may come without it).
        response["headers"] = {"Retry-After": {**_RETRY_AFTER, "required": True}}
    else:
        response = {**declared, "description": f"{declared['description']}; or: {shed}"}
        response.setdefault("content", _error_response(503, shed)["content"])
        response.setdefault("headers", {"Retry-After": _RETRY_AFTER})
    responses["503"] = response
    op[SHED_KEY] = kinds


def _unmodelled(media_type: str) -> dict[str, Any]:
    if media_type.startswith("text/"):
        return {"type": "string"}
    return {"type": "string", "format": "binary"}


def _app_limited(path: str, exempt: Sequence[str]) -> bool:
    return not path.startswith(tuple(exempt))


def _operation(
    spec: ApiSpec,
    params: list[dict[str, Any]],
    refs: dict[type[BaseModel], dict[str, Any]],
    components: dict[str, Any],
    *,
    rate_limited: bool,
) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": spec.summary, "tags": spec.tags}
    if params:
        op["parameters"] = params
    if spec.body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": refs[spec.body]}},
        }
    holders: list[Any] = [refs[m] for m in (spec.query, spec.path) if m is not None]
    holders += [params, op.get("requestBody")]
    rules = list(dict.fromkeys(_rules_in(holders, components, set())))
    if rules:
        op["description"] = "Refused with 422 unless: " + "; ".join(rules) + "."
        op[RULES_KEY] = rules
    # Several media types, comma-separated, when the query picks the format (CSV or JSON lines).
    media_types = [m.strip() for m in spec.media_type.split(",")]
    ok: dict[str, Any] = {"description": "OK"}
    if spec.response is not None:
        ok["content"] = {m: {"schema": refs[spec.response]} for m in media_types}
    elif media_types != ["application/json"]:  # text or a file: no model to name
        ok["content"] = {m: {"schema": _unmodelled(m)} for m in media_types}
    responses: dict[str, Any] = {str(spec.status): ok}
    # The route's own descriptions win over the implied ones.
    statuses = {**_implied_statuses(spec, rate_limited=rate_limited), **spec.responses}
    for status in sorted(statuses):
        if status >= 400 and status in spec.responses and HTML in media_types:
            # A page a person opens answers its own refusals as pages too.
            page = {HTML: {"schema": _unmodelled(HTML)}}
            responses[str(status)] = {"description": statuses[status], "content": page}
        elif status >= 400:
            responses[str(status)] = _error_response(status, statuses[status])
        elif status != spec.status:  # another success or a 304: no body to describe
            responses[str(status)] = {"description": statuses[status]}
    op["responses"] = responses
    if spec.admin:
        op["security"] = [{"adminKey": []}]
    return op


def build_openapi(
    routes: Iterable[BaseRoute],
    *,
    title: str,
    version: str,
    app_limit_exempt: Sequence[str] | None = None,
    app: Any = None,
) -> dict[str, Any]:
    """The document for ``routes``.

    ``app_limit_exempt`` are the path prefixes the app-wide per-IP rate limit spares; every other
    operation documents its 429 (``None``: no app-wide limit). ``app``, when running, fills in
    the constraints of ``runtime_schema`` fields.
    """
    paths: dict[str, dict[str, Any]] = {}
    documented: list[tuple[str, Route, ApiSpec]] = []
    for path, route in _iter_routes(routes):
        spec: ApiSpec | None = getattr(route.endpoint, "__kervan_api__", None)
        if spec is not None and route.include_in_schema:
            documented.append((path, route, spec))
    refs, schemas = _component_schemas([spec for _, _, spec in documented])
    components: dict[str, Any] = {"Error": ERROR_SCHEMA, **schemas}
    for path, route, spec in documented:
        methods = sorted(m for m in (route.methods or {"GET"}) if m != "HEAD")
        limited = bool(getattr(route.endpoint, "__kervan_rate_limits__", ())) or (
            app_limit_exempt is not None and _app_limited(path, app_limit_exempt)
        )
        path = _CONVERTOR.sub(r"{\1}", path)
        declared = refs[spec.path].get("properties", {}) if spec.path else {}
        params = [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": declared.get(name)
                or {"type": _CONVERTOR_TYPES.get(type(conv).__name__, "string")},
            }
            for name, conv in route.param_convertors.items()
        ]
        if spec.query is not None:
            params += _query_parameters(refs[spec.query])
        for method in methods:
            operation = _operation(spec, params, refs, components, rate_limited=limited)
            kinds = shed_kinds(path, method)
            if kinds:
                _add_shed_response(operation, kinds)
            paths.setdefault(path, {})[method.lower()] = operation
    document = {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"adminKey": {"type": "http", "scheme": "bearer"}},
        },
    }
    # The document is cached and served: it must not share dicts with this module's constants
    # or between operations, or one consumer's change would show up everywhere.
    document = copy.deepcopy(document)
    _resolve_runtime_schemas(document, app)
    _strip_rules(document)
    return document
