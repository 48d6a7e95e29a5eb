"""OpenAPI 3.1 generated from the pydantic models that endpoints declare with ``@api``
(``service/endpoint.py``)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.routing import BaseRoute, Mount, Route

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
    response: type[BaseModel] | None = None
    status: int = 200
    tags: list[str] = field(default_factory=list)
    responses: dict[int, str] = field(default_factory=dict)
    media_type: str = "application/json"
    admin: bool = False


# Starlette writes typed path parameters as {name:int}; OpenAPI wants {name} plus a schema.
_CONVERTOR = re.compile(r"{([A-Za-z_][A-Za-z0-9_]*):[A-Za-z_]+}")
_CONVERTOR_TYPES = {"IntegerConvertor": "integer", "FloatConvertor": "number"}


def _iter_routes(routes: Iterable[BaseRoute], prefix: str = "") -> Iterable[tuple[str, Route]]:
    for route in routes:
        if isinstance(route, Mount):
            yield from _iter_routes(route.routes, prefix + route.path)
        elif isinstance(route, Route):
            yield prefix + route.path, route


def _component_schemas(
    specs: Iterable[ApiSpec],
) -> tuple[dict[type[BaseModel], dict[str, Any]], dict[str, Any]]:
    """References for every body/response model and the component schemas they point into.

    One pydantic pass over all models together: two features may each name a model
    ``RuleOut``, and pydantic then gives each its own module-qualified component name
    instead of one silently replacing the other.
    """
    models = list(
        dict.fromkeys(m for spec in specs for m in (spec.body, spec.response) if m is not None)
    )
    if not models:
        return {}, {}
    refs, top = models_json_schema(
        [(model, "validation") for model in models],
        ref_template="#/components/schemas/{model}",
    )
    return {model: refs[(model, "validation")] for model in models}, top.get("$defs", {})


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema()
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


def build_openapi(routes: Iterable[BaseRoute], *, title: str, version: str) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    documented: list[tuple[str, Route, ApiSpec]] = []
    for path, route in _iter_routes(routes):
        spec: ApiSpec | None = getattr(route.endpoint, "__kervan_api__", None)
        if spec is not None and route.include_in_schema:
            documented.append((path, route, spec))
    refs, schemas = _component_schemas(spec for _, _, spec in documented)
    components: dict[str, Any] = {"Error": ERROR_SCHEMA, **schemas}
    for path, route, spec in documented:
        methods = sorted(m for m in (route.methods or {"GET"}) if m != "HEAD")
        path = _CONVERTOR.sub(r"{\1}", path)
        declared = spec.path.model_json_schema().get("properties", {}) if spec.path else {}
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
            params += _query_parameters(spec.query)
        for method in methods:
            op: dict[str, Any] = {"summary": spec.summary, "tags": spec.tags}
            if params:
                op["parameters"] = params
            if spec.body is not None:
                op["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": refs[spec.body]}},
                }
            ok: dict[str, Any] = {"description": "OK"}
            if spec.response is not None:
                ok["content"] = {spec.media_type: {"schema": refs[spec.response]}}
            error_ref = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
            responses: dict[str, Any] = {str(spec.status): ok}
            extra = dict(spec.responses)
            if spec.body is not None or spec.query is not None:
                extra.setdefault(422, "Validation failed")
            if spec.admin:
                extra.setdefault(401, "Admin credentials missing or wrong")
            for status, description in extra.items():
                responses[str(status)] = {"description": description, "content": error_ref}
            op["responses"] = responses
            if spec.admin:
                op["security"] = [{"adminKey": []}]
            paths.setdefault(path, {})[method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"adminKey": {"type": "http", "scheme": "bearer"}},
        },
    }
