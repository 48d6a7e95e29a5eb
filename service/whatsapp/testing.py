"""Test seam: hold webhook processing while a file exists (never in production).

A crash test needs a real ``kervan serve`` that has stored deliveries and not processed them
yet (``tests/whatsapp/test_webhook_kill.py``). Outside ``KERVAN_ENV=production`` the webhook
processor checks, before each processing group, whether ``<KERVAN_DATA_DIR>/HOLD_FILE`` exists
and waits while it does; the store step goes on, so deliveries keep being stored (and their
requests keep waiting). The test process creates and removes the file. In production the check
is not even installed.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from service.logging import get_logger
from service.settings import Settings
from service.whatsapp.webhook import Hold

log = get_logger("kervan.whatsapp.testing")
HOLD_FILE = "whatsapp-hold-processing"
POLL_SECONDS = 0.05


def hold_file(settings: Settings) -> Path:
    return Path(settings.data_dir) / HOLD_FILE


def processing_hold(settings: Settings) -> Hold | None:
    """The hold of this process's webhook processor, or None (production)."""
    if settings.env == "production":
        return None
    path = hold_file(settings)

    async def hold() -> None:
        if not path.exists():
            return
        log.warning("webhook processing held while %s exists (test seam)", path)
        while path.exists():  # noqa: ASYNC110 - another process removes the file
            await asyncio.sleep(POLL_SECONDS)

    return hold
