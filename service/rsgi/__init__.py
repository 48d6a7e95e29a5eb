"""kervan under granian's RSGI interface (``KERVAN_SERVER_INTERFACE=rsgi``).

ASGI costs every request a dict scope, message dicts and Python-side framing; with no kervan code
at all, a bare ASGI app on granian answers fewer requests per second than Node/Fastify here. Under
RSGI the hot GET routes (``service/fast_routes.py``) are answered straight from granian's
protocol object with ``response_bytes``, through the same edge steps (``service/edge.py``) as
under ASGI. Every other request and every WebSocket goes through a generic ASGI bridge
(``bridge.py``) to the unchanged Starlette app, whose lifespan the RSGI init/del hooks run
(``app.py``).

What RSGI (granian 2.8) cannot carry, so the bridge cannot either (see ``bridge.py``): WebSocket
close codes and reasons (the client sees 1005), accept-time subprotocols and headers, WebSocket
denial responses with a body, request header values outside visible ASCII (dropped by granian),
and the raw (still percent-encoded) request path.
"""

from __future__ import annotations

from native.edgepath import FastFront
from service.rsgi.app import KervanRsgi


def app_factory() -> FastFront:
    """granian's target for ``kervan serve`` under RSGI (as ``service.asgi:app_factory``): the
    compiled front over ``KervanRsgi``."""
    from service.asgi import served_app

    app = served_app()
    front = KervanRsgi(app, app.edge).front
    assert front is not None
    return front


__all__ = ["KervanRsgi", "app_factory"]
