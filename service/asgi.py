"""ASGI entry point for granian (``kervan serve``) and other servers."""

from __future__ import annotations

from service.app import KervanApp, create_app
from service.logging import configure_logging
from service.settings import load_settings


def app_factory() -> KervanApp:
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format, env=settings.env)
    return create_app(settings, freeze_heap=True)
