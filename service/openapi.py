"""OpenAPI 3.1 generated from the pydantic models that endpoints declare with ``@api``."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel
from starlette.routing import BaseRoute, Mount, Route

F = TypeVar("F", bound=Callable[..., Any])

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
    response: type[BaseModel] | None = None
    status: int = 200
    tags: list[str] = field(default_factory=list)
    responses: dict[int, str] = field(default_factory=dict)
    media_type: str = "application/json"
    admin: bool = False


def api(
    summary: str,
    *,
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    response: type[BaseModel] | None = None,
    status: int = 200,
    tags: Iterable[str] = (),
    responses: dict[int, str] | None = None,
    media_type: str = "application/json",
    admin: bool = False,
) -> Callable[[F], F]:
    """Attach the request/response models of an endpoint for the OpenAPI document."""

    def mark(fn: F) -> F:
        fn.__kervan_api__ = ApiSpec(  # type: ignore[attr-defined]
            summary, body, query, response, status, list(tags), responses or {}, media_type, admin
        )
        return fn

    return mark


# Starlette writes typed path parameters as {name:int}; OpenAPI wants {name} plus a schema.
_CONVERTOR = re.compile(r"{([A-Za-z_][A-Za-z0-9_]*):[A-Za-z_]+}")
_CONVERTOR_TYPES = {"IntegerConvertor": "integer", "FloatConvertor": "number"}


def _iter_routes(routes: Iterable[BaseRoute], prefix: str = "") -> Iterable[tuple[str, Route]]:
    for route in routes:
        if isinstance(route, Mount):
            yield from _iter_routes(route.routes, prefix + route.path)
        elif isinstance(route, Route):
            yield prefix + route.path, route


def _schema_ref(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in schema.pop("$defs", {}).items():
        components[name] = sub
    components[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


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
    components: dict[str, Any] = {"Error": ERROR_SCHEMA}
    for path, route in _iter_routes(routes):
        spec: ApiSpec | None = getattr(route.endpoint, "__kervan_api__", None)
        if spec is None or not route.include_in_schema:
            continue
        methods = sorted(m for m in (route.methods or {"GET"}) if m != "HEAD")
        path = _CONVERTOR.sub(r"{\1}", path)
        params = [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": {"type": _CONVERTOR_TYPES.get(type(conv).__name__, "string")},
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
                    "content": {"application/json": {"schema": _schema_ref(spec.body, components)}},
                }
            ok: dict[str, Any] = {"description": "OK"}
            if spec.response is not None:
                ok["content"] = {
                    spec.media_type: {"schema": _schema_ref(spec.response, components)}
                }
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
