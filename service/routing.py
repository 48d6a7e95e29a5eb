"""Route assembly: one route per path, so a 405 names every method of the path.

Starlette answers 405 from the first ``Route`` whose path matches, with that route's methods
only: ``GET /consent/{subject}`` and ``PUT /consent/{subject}`` declared as two routes would
answer ``DELETE`` with ``Allow: GET, HEAD``. ``merge_same_path`` joins such routes into one
``PathRoute`` that dispatches on the method and keeps each endpoint (and its ``@api`` spec)
reachable through ``PathRoute.routes`` for the OpenAPI builder.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from starlette.exceptions import HTTPException
from starlette.responses import PlainTextResponse
from starlette.routing import BaseRoute, Match, NoMatchFound, Route
from starlette.types import Receive, Scope, Send


def allow_header(methods: Iterable[str]) -> dict[str, str]:
    return {"Allow": ", ".join(sorted(methods))}


class PathRoute(Route):
    """Several single-purpose routes of one path, routed as one."""

    def __init__(self, routes: Sequence[Route]) -> None:
        first = routes[0]
        self.routes = list(routes)
        # The first declaration of a method wins, as it did when the routes were separate.
        self._by_method: dict[str, Route] = {}
        for route in routes:
            for method in route.methods or ():
                self._by_method.setdefault(method, route)
        super().__init__(
            first.path,
            first.endpoint,
            methods=sorted(self._by_method),
            name=first.name,
            include_in_schema=any(route.include_in_schema for route in routes),
        )

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is Match.FULL:
            child_scope["endpoint"] = self._by_method[scope["method"]].endpoint
        return match, child_scope

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        for route in self.routes:
            try:
                return route.url_path_for(name, **path_params)
            except NoMatchFound:
                continue
        raise NoMatchFound(name, path_params)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self._by_method.get(scope["method"])
        if route is not None:
            await route.handle(scope, receive, send)
            return
        headers = allow_header(self.methods or ())
        if "app" in scope:  # the app's handler answers in the error envelope
            raise HTTPException(status_code=405, headers=headers)
        await PlainTextResponse("Method Not Allowed", status_code=405, headers=headers)(
            scope, receive, send
        )


def merge_same_path(routes: Sequence[BaseRoute]) -> list[BaseRoute]:
    """The routes with every group of same-path ``Route``s (one or more) replaced by one
    ``PathRoute``.

    The merged route takes the place of the group's first route; other routes keep their order.
    """
    groups: dict[str, list[Route]] = {}
    for route in routes:
        if isinstance(route, Route) and type(route) is Route:
            groups.setdefault(route.path, []).append(route)
    merged: list[BaseRoute] = []
    for route in routes:
        if not (isinstance(route, Route) and type(route) is Route):
            merged.append(route)
            continue
        group = groups[route.path]
        # A single route too: Starlette's own 405 lists its methods in set order, which differs
        # from process to process (string hashing), so two pods would answer differently.
        if route is group[0]:
            merged.append(PathRoute(group))
    return merged
