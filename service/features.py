"""The features of kervan, in the order their ``setup(runtime)`` runs.

Read by the web app (``service/app.py``) and by ``kervan worker`` alike, so both processes hold
the same facilities and the same queue handlers. A feature's setup builds its facility, provides
it on the runtime and registers its background components; routes only map HTTP to it.

Components start in this order and stop in reverse. The rate limiter comes first (the worker
paces jobs through it); the queue comes last, so that its worker starts after every handler is
registered and every client it calls is started, and stops first, before they close.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from service.admins import feature as admins
from service.ads import feature as ads
from service.cache import feature as cache
from service.consent import feature as consent
from service.images import feature as images
from service.overload import feature as overload
from service.queue import feature as queue
from service.ratelimit import feature as ratelimit
from service.runtime import Runtime
from service.speculation import feature as speculation
from service.support import feature as support
from service.telegram import feature as telegram
from service.tracking import feature as tracking
from service.whatsapp import feature as whatsapp

Setup = Callable[[Runtime], Awaitable[None]]

FEATURES: tuple[tuple[str, Setup], ...] = (
    ("overload", overload.setup),
    ("cache", cache.setup),
    ("ratelimit", ratelimit.setup),
    ("consent", consent.setup),
    ("speculation", speculation.setup),
    ("images", images.setup),
    ("whatsapp", whatsapp.setup),
    ("telegram", telegram.setup),
    ("admins", admins.setup),
    ("support", support.setup),
    ("tracking", tracking.setup),
    ("ads", ads.setup),
    ("queue", queue.setup),
)


async def setup_features(runtime: Runtime) -> None:
    for _name, setup in FEATURES:
        await setup(runtime)
