"""ASGI entry point for granian (``kervan serve``) and other servers."""

from __future__ import annotations

from native.edgepath import AsgiFront
from service.app import KervanApp, asgi_front, create_app
from service.logging import configure_logging
from service.settings import load_settings


def served_app() -> KervanApp:
    """The app as ``kervan serve`` runs it (settings from the environment, logging set up)."""
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format, env=settings.env)
    return create_app(settings, freeze_heap=True)


def app_factory() -> AsgiFront:
    """granian's ASGI target: the compiled front over the served app (``asgi_front``)."""
    return asgi_front(served_app())
