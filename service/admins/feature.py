"""The admins feature's setup: ``AdminAuth`` (codes and sessions), also provided as the
``AdminAuthenticator`` that the admin guard (``service/auth.py``) and the WebSocket side ask.

It has no background component: codes and sessions expire by themselves in the state backend.
The queue it sends codes through is set up later in the feature order and read per request.
"""

from __future__ import annotations

from service.admins.facility import AdminAuth
from service.auth import AdminAuthenticator
from service.runtime import Runtime


async def setup(runtime: Runtime) -> None:
    auth = runtime.provide(AdminAuth, AdminAuth(runtime))
    runtime.provide(AdminAuthenticator, auth)
