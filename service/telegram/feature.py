"""The Telegram feature's setup: the Bot API client and the handlers of its queues."""

from __future__ import annotations

from service.runtime import Runtime
from service.telegram.jobs import install


async def setup(runtime: Runtime) -> None:
    install(runtime)
