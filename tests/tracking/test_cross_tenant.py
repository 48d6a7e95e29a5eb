# ruff: noqa: F811  (fixtures imported from tests/tracking/people_rig.py are redefined as parameters)
"""The cross-tenant walk: every route under ``/t/``, ``/admin/sites`` and ``/admin/people``,
read from the app's router (a route added later is walked without touching this test), called
by the owner of site A against the ids of site B.

- A route of a site (``{site_id}`` in its path) answers 404 for B's site, and for B's intent,
  session, member or call under A's own site: never 200, never 403, never B's data.
- An admin route answers 401 to a person; ``/t/me`` answers with A's own data only.
- The few routes that are not a signed-in person's (the public script and ingest, sign-in, the
  phone systems' calls) are listed below with why; each is still called where a person's
  credentials could matter.
- Every answer is searched for B's data, and B's data is read back unchanged afterwards.

Requests carry a valid body and query for the route (built from the models the route declares),
so a refusal is the tenant boundary, not a malformed request. GET routes are also called with
A's own ids and must answer 200: the walk reaches real handlers.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, Phase, find, settings
from hypothesis import strategies as st
from starlette.routing import BaseRoute, Mount, Route

from service.openapi import ApiSpec
from service.routing import PathRoute
from tests.tracking.people_rig import ADMIN, Rig, bearer, make_rig, rig, stack  # noqa: F401

WALKED_PREFIXES = ("/t/", "/admin/sites", "/admin/people")

#: Routes that are not a signed-in person's, and why; ``calls``: what the owner of A gets.
NOT_A_PERSONS: dict[tuple[str, str], tuple[str, int | None]] = {
    ("GET", "/t/{site_key}.js"): ("the public script, served to any page of any site", None),
    ("POST", "/t/sync"): ("ingest, by a site's public key and an allowed Origin", None),
    ("OPTIONS", "/t/sync"): ("the CORS preflight of ingest", None),
    ("POST", "/t/auth/otp/request"): ("sign-in: before any site", None),
    ("POST", "/t/auth/otp/verify"): ("sign-in: before any site", None),
    ("POST", "/t/auth/logout"): ("signs the caller out, of no site", None),
    ("POST", "/t/calls"): ("phone systems, by a site's calls token: a person is refused", 401),
}
#: Routes about the caller itself: 200, with the caller's own data only.
THE_CALLERS_OWN = {("GET", "/t/me"), ("GET", "/t/trash/sites")}

B_NAME = "Tenant B Secret Name"
B_EMAIL = "b-owner@tenant-b.example"
B_TARGET = "tel:+491709999999"
B_REF = "BBBBBB"
B_VISITOR = "v_tenantBsecretvisitor"
B_CALLER = "+491708888888"


def walked_routes(routes: list[BaseRoute], prefix: str = "") -> list[tuple[str, str, Route]]:
    found: list[tuple[str, str, Route]] = []
    for route in routes:
        if isinstance(route, Mount):
            found += walked_routes(list(route.routes), prefix + route.path)
        elif isinstance(route, PathRoute):
            found += walked_routes(list(route.routes), prefix)
        elif isinstance(route, Route):
            path = prefix + route.path
            if path.startswith(WALKED_PREFIXES):
                found += [(m, path, route) for m in sorted(route.methods or ()) if m != "HEAD"]
    return found


# ---------------------------------------------------------------- valid requests


def _minimal_string(schema: dict[str, Any]) -> str:
    low, high = schema.get("minLength", 1), schema.get("maxLength", 10_000)
    if schema.get("format") == "date":
        return datetime.now(UTC).date().isoformat()
    if schema.get("format") == "date-time":
        return datetime.now(UTC).isoformat()
    pattern = schema.get("pattern")
    if pattern is None:
        return "x" * max(low, 1)
    return _matching(pattern, low, high)


@functools.cache
def _matching(pattern: str, low: int, high: int) -> str:
    """A string of the pattern (the same one every run: derandomized, not shrunk)."""
    found: str = find(
        st.from_regex(pattern, fullmatch=True),
        lambda s: low <= len(s) <= high and s.isascii() and s.isprintable(),
        settings=settings(
            database=None,
            derandomize=True,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        ),
    )
    return found


def example(schema: dict[str, Any], defs: dict[str, Any]) -> Any:
    """The simplest value ``schema`` accepts (required fields only)."""
    if "$ref" in schema:
        return example(defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [o for o in schema[key] if o.get("type") != "null"]
            return example(options[0], defs)
    kind = schema.get("type")
    if kind == "object":
        required = set(schema.get("required", []))
        props = schema.get("properties", {})
        return {name: example(prop, defs) for name, prop in props.items() if name in required}
    if kind == "array":
        return [example(schema.get("items", {}), defs) for _ in range(schema.get("minItems", 0))]
    if kind == "string":
        return _minimal_string(schema)
    if kind in ("integer", "number"):
        low = schema.get("minimum", schema.get("exclusiveMinimum", 0) + 1)
        return max(int(low), 1) if kind == "integer" else float(max(low, 1))
    if kind == "boolean":
        return False
    return None


def model_example(model: Any) -> Any:
    schema = model.model_json_schema()
    return example(schema, schema.get("$defs", {}))


def query_string(spec: ApiSpec) -> str:
    if spec.query is None:
        return ""
    values = model_example(spec.query)
    if not values:
        return ""
    text = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in values.items()}
    return "?" + "&".join(f"{k}={v}" for k, v in text.items())


# ---------------------------------------------------------------- the two tenants


async def _tenants(rig: Rig) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    a_site = await rig.site("Tenant A")
    b_site = await rig.site(B_NAME)
    a_owner = await rig.signed_in(a_site["id"], "a-owner@tenant-a.example", "owner")
    b_owner = (await rig.member(b_site["id"], B_EMAIL, "owner"))["member"]["person_id"]
    a_other = (await rig.member(a_site["id"], "a-viewer@tenant-a.example", "viewer"))["member"][
        "person_id"
    ]
    ids: dict[str, dict[str, Any]] = {}
    for name, site, visitor, target, ref in (
        ("a", a_site, "v_tenantAvisitor0001", "tel:+905551110000", "AAAAAA"),
        ("b", b_site, B_VISITOR, B_TARGET, B_REF),
    ):
        session = await rig.tracking_session(site["id"], visitor=visitor)
        intent = await rig.intent(
            site["id"], target=target, session_id=session, ago=timedelta(minutes=1)
        )
        await rig.intent(site["id"], kind="whatsapp", target="https://wa.me/4917", ref_code=ref)
        made = await rig.client.post(f"/t/sites/{site['id']}/calls-token", headers=ADMIN)
        token = made.json()["token"]
        call = await rig.client.post(
            "/t/calls",
            json={
                "caller": B_CALLER if name == "b" else "+905320000000",
                "at": rig.now().isoformat(),
            },
            headers=bearer(token),
        )
        assert call.status_code == 201, call.text
        ids[name] = {
            "site_id": site["id"],
            "intent_id": intent,
            "session_id": session,
            "call_id": call.json()["call"]["id"],
            "calls_token": token,
            "site_key": site["public_key"],
        }
    ids["a"]["person_id"] = a_other
    ids["b"]["person_id"] = b_owner
    return ids["a"], ids["b"], a_owner


def _fill(path: str, values: dict[str, Any]) -> str:
    for name, value in values.items():
        path = path.replace("{" + name + "}", str(value))
    return path


def _params(path: str) -> list[str]:
    return [part[1:-1].split(":")[0] for part in path.split("/") if part.startswith("{")]


def _markers(b: dict[str, Any]) -> list[str]:
    return [
        B_NAME,
        B_EMAIL,
        B_TARGET.removeprefix("tel:"),
        B_REF,
        B_VISITOR,
        B_CALLER,
        b["site_key"],
    ]


async def test_every_tracking_route_keeps_site_b_from_site_as_owner(rig: Rig) -> None:
    a, b, a_owner = await _tenants(rig)
    routes = walked_routes(list(rig.client.app.routes))  # type: ignore[attr-defined]
    listed = {(m, p) for m, p, _ in routes}
    stale = sorted(set(NOT_A_PERSONS) - listed)
    assert not stale, f"listed as not a person's but no such route any more: {stale}"
    walked: list[str] = []
    problems: list[str] = []

    async def call(method: str, url: str, spec: ApiSpec | None, expect: set[int]) -> int:
        body = model_example(spec.body) if spec is not None and spec.body is not None else None
        query = query_string(spec) if spec is not None else ""
        answer = await rig.client.request(method, url + query, json=body, headers=a_owner)
        walked.append(f"{method} {url}{query} -> {answer.status_code}")
        if answer.status_code not in expect:
            problems.append(f"{method} {url}{query}: {answer.status_code} {answer.text[:300]}")
        leaked = [marker for marker in _markers(b) if marker in answer.text]
        if leaked:
            problems.append(f"{method} {url}{query}: B's data {leaked} in {answer.text[:300]}")
        return answer.status_code

    for method, path, route in routes:
        spec: ApiSpec | None = getattr(route.endpoint, "__kervan_api__", None)
        params = _params(path)
        if (method, path) in NOT_A_PERSONS:
            _why, expected = NOT_A_PERSONS[(method, path)]
            if expected is not None:
                await call(method, _fill(path, b), spec, {expected})
            continue
        if (method, path) in THE_CALLERS_OWN:
            await call(method, path, spec, {200})
            continue
        unknown = [p for p in params if p not in b]
        assert not unknown, f"{method} {path}: teach the walk site B's value of {unknown}"
        if path.startswith("/admin/"):
            await call(method, _fill(path, b), spec, {401, 403})
            continue
        assert "site_id" in params, f"{method} {path}: not a site's route; list it above with why"
        await call(method, _fill(path, b), spec, {404})
        if len(params) > 1:  # B's intent, session, member... under A's own site
            await call(method, _fill(path, {**b, "site_id": a["site_id"]}), spec, {404})

    # The walk reached real handlers: A's own ids answer every GET.
    for method, path, route in routes:
        spec = getattr(route.endpoint, "__kervan_api__", None)
        if method == "GET" and "{site_id}" in path and not path.startswith("/admin/"):
            own = await rig.client.get(_fill(path, a) + query_string(spec), headers=a_owner)
            if own.status_code != 200:
                problems.append(f"GET {_fill(path, a)} with A's own ids: {own.status_code}")
    assert not problems, "\n".join([*problems, "", "walked:", *walked])
    assert len(walked) >= 20, walked

    # B's data is as it was.
    row = await rig.intent_row(b["site_id"], b["intent_id"])
    assert (row.status, row.amount, row.sealed_at) == ("pending", None, None)
    members = await rig.client.get(f"/t/sites/{b['site_id']}/members", headers=ADMIN)
    assert [(m["email"], m["role"]) for m in members.json()["items"]] == [(B_EMAIL, "owner")]
    site = await rig.client.get(f"/admin/sites/{b['site_id']}", headers=ADMIN)
    assert site.json()["name"] == B_NAME
    still = await rig.client.post(
        "/t/calls",
        json={"caller": "+491707777777", "at": rig.now().isoformat()},
        headers=bearer(b["calls_token"]),
    )
    assert still.status_code == 201  # B's calls token was not replaced


async def test_a_viewer_of_a_is_refused_b_with_404_too(rig: Rig) -> None:
    a, b, _owner = await _tenants(rig)
    viewer = await rig.signed_in(a["site_id"], "viewer2@tenant-a.example", "viewer")
    for method, path, route in walked_routes(list(rig.client.app.routes)):  # type: ignore[attr-defined]
        if "{site_id}" not in path or path.startswith("/admin/"):
            continue
        spec = getattr(route.endpoint, "__kervan_api__", None)
        body = model_example(spec.body) if spec is not None and spec.body is not None else None
        url = _fill(path, b) + (query_string(spec) if spec is not None else "")
        answer = await rig.client.request(method, url, json=body, headers=viewer)
        assert answer.status_code == 404, (method, url, answer.text)
