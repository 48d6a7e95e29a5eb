"""OpenAPI component schemas: models of the same name from different features stay distinct."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.endpoint import api
from service.openapi import build_openapi


def _resolve(document: dict[str, Any], ref: dict[str, Any]) -> dict[str, Any]:
    if "$ref" not in ref:  # documented inline (a text or binary body)
        return ref
    name = ref["$ref"].removeprefix("#/components/schemas/")
    schema: dict[str, Any] = document["components"]["schemas"][name]
    return schema


def _feature_a() -> type[BaseModel]:
    class RuleOut(BaseModel):
        name: str

    return RuleOut


def _feature_b() -> type[BaseModel]:
    class Item(BaseModel):
        tag: str

    class RuleOut(BaseModel):
        source: str
        items: list[Item]

    return RuleOut


def _route(path: str, model: type[BaseModel], body: type[BaseModel] | None = None) -> Route:
    @api("x", response=model, body=body)
    async def endpoint(request: Request) -> Response:
        raise NotImplementedError

    return Route(path, endpoint, methods=["POST"])


def _response_schema(document: dict[str, Any], path: str) -> dict[str, Any]:
    content = document["paths"][path]["post"]["responses"]["200"]["content"]
    return _resolve(document, content["application/json"]["schema"])


def test_models_sharing_a_name_keep_their_own_schemas() -> None:
    a, b = _feature_a(), _feature_b()
    document = build_openapi([_route("/a", a), _route("/b", b, body=a)], title="t", version="1")
    assert set(_response_schema(document, "/a")["properties"]) == {"name"}
    schema_b = _response_schema(document, "/b")
    assert set(schema_b["properties"]) == {"source", "items"}
    # The nested model's reference resolves inside the document.
    item_ref = schema_b["properties"]["items"]["items"]
    assert set(_resolve(document, item_ref)["properties"]) == {"tag"}
    body = document["paths"]["/b"]["post"]["requestBody"]["content"]["application/json"]
    assert set(_resolve(document, body["schema"])["properties"]) == {"name"}


def _nested_refs(schema: Any) -> list[dict[str, Any]]:
    if isinstance(schema, dict):
        found = [schema] if "$ref" in schema else []
        return found + [ref for value in schema.values() for ref in _nested_refs(value)]
    if isinstance(schema, list):
        return [ref for value in schema for ref in _nested_refs(value)]
    return []


def test_every_model_of_the_app_resolves_to_its_own_schema() -> None:
    from service.app import create_app
    from service.openapi import ApiSpec, _iter_routes
    from service.settings import Settings

    app = create_app(Settings(_env_file=None, admin_api_key="k"))  # type: ignore[call-arg]
    document = build_openapi(app.routes, title="kervan", version="test")
    checked = 0
    for path, route in _iter_routes(app.routes):
        spec: ApiSpec | None = getattr(route.endpoint, "__kervan_api__", None)
        if spec is None or not route.include_in_schema:
            continue
        path = path.replace(":int}", "}")
        for method in route.methods or ():
            if method == "HEAD":
                continue
            op = document["paths"][path][method.lower()]
            if spec.body is not None:
                ref = op["requestBody"]["content"]["application/json"]["schema"]
                expected = set(spec.body.model_json_schema()["properties"])
                assert set(_resolve(document, ref)["properties"]) == expected, (path, method)
                checked += 1
            if spec.response is not None:
                own = spec.response.model_json_schema()
                for media_type in spec.media_type.split(","):
                    content = op["responses"][str(spec.status)]["content"][media_type.strip()]
                    documented = _resolve(document, content["schema"])
                    if "properties" in own:
                        assert set(documented["properties"]) == set(own["properties"]), (
                            path,
                            method,
                        )
                    else:  # a root model (text, bytes): the same kind of value
                        assert documented.get("type") == own.get("type"), (path, method)
                    checked += 1
    assert checked > 20
    for ref in _nested_refs(document):
        _resolve(document, ref)  # every reference points at a component that exists
