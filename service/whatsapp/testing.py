"""Test seam: hold webhook processing while a file exists (only where a test asks for it).

A crash test needs a real ``kervan serve`` that has stored deliveries and not processed them
yet (``tests/whatsapp/test_webhook_kill.py``). Only when KERVAN_WHATSAPP_TEST_HOLD_FILE names
a file (and never with ``KERVAN_ENV=production``) the webhook processor checks, before each
processing group, whether that file exists and waits while it does; the store step goes on, so
deliveries keep being stored (and their requests keep waiting). The test process creates and
removes the file. Otherwise the check is not even installed.
"""

from __future__ import annotations

import asyncio

from service.logging import get_logger
from service.settings import Settings
from service.whatsapp.webhook import Hold

log = get_logger("kervan.whatsapp.testing")
POLL_SECONDS = 0.05


def processing_hold(settings: Settings) -> Hold | None:
    """The hold of this process's webhook processor, or None (no seam asked for)."""
    path = settings.whatsapp_test_hold_file
    if path is None or settings.env == "production":
        return None

    async def hold() -> None:
        if not path.exists():
            return
        log.warning("webhook processing held while %s exists (test seam)", path)
        while path.exists():  # noqa: ASYNC110 - another process removes the file
            await asyncio.sleep(POLL_SECONDS)

    return hold
