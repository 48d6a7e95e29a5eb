"""The WhatsApp facility of a running process: Graph client, webhook processor, link secret,
and the consent policy its opt-outs and opt-ins follow.

Built by the feature's ``setup`` (``service/whatsapp/feature.py``) and provided on the runtime
(``runtime.facility(WhatsApp)``), in the API process and in the worker alike, so handlers never
touch module globals.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from core.whatsapp.faq import FaqResponder
from service.consent.policy import ConsentPolicy
from service.runtime import Runtime
from service.settings import Settings
from service.whatsapp.graph import GraphClient, GraphConfig
from service.whatsapp.webhook import (
    DEFAULT_GROUP_WAIT_SECONDS,
    DEFAULT_MAX_GROUP,
    DEFAULT_MAX_GROUP_BYTES,
    WebhookProcessor,
)


@dataclass
class WhatsApp:
    runtime: Runtime
    graph: GraphClient
    processor: WebhookProcessor
    unsubscribe_secret: str
    faq: FaqResponder | None
    consent: ConsentPolicy

    @property
    def settings(self) -> Settings:
        return self.runtime.settings

    @property
    def sending_configured(self) -> bool:
        return sending_configured(self.settings)

    async def start(self) -> None:
        await self.graph.start()

    async def stop(self) -> None:
        await self.processor.close()
        await self.graph.stop()


def sending_configured(settings: Settings) -> bool:
    """Whether the Graph API can be called: without a token and a sender number every send and
    read receipt would fail at the provider, so none is queued."""
    return bool(settings.whatsapp_access_token and settings.whatsapp_phone_number_id)


def unsubscribe_secret(settings: Settings) -> str:
    if settings.whatsapp_unsubscribe_secret:
        return settings.whatsapp_unsubscribe_secret
    # Derived, not reused: a leaked link key must not reveal the cookie key, and vice versa.
    return hmac.new(
        settings.cookie_secret.encode(), b"kervan/whatsapp-unsubscribe-key", hashlib.sha256
    ).hexdigest()


def build_whatsapp(
    runtime: Runtime,
    *,
    max_group: int = DEFAULT_MAX_GROUP,
    max_group_bytes: int = DEFAULT_MAX_GROUP_BYTES,
    group_wait: float = DEFAULT_GROUP_WAIT_SECONDS,
) -> WhatsApp:
    settings = runtime.settings
    graph = GraphClient(
        GraphConfig(
            base_url=settings.whatsapp_graph_base_url,
            version=settings.whatsapp_api_version,
            access_token=settings.whatsapp_access_token,
            phone_number_id=settings.whatsapp_phone_number_id,
            timeout_seconds=settings.whatsapp_timeout_seconds,
        )
    )
    processor = WebhookProcessor(
        runtime.db,
        runtime.backends,
        runtime.clock,
        max_group=max_group,
        max_group_bytes=max_group_bytes,
        group_wait=group_wait,
    )
    faq = FaqResponder(settings.whatsapp_faq) if settings.whatsapp_auto_reply else None
    # The consent feature is set up first (service/features.py); its policy is this runtime's.
    consent = runtime.facility(ConsentPolicy)
    return WhatsApp(runtime, graph, processor, unsubscribe_secret(settings), faq, consent)


def get_whatsapp(runtime: Runtime) -> WhatsApp:
    """The facility of this runtime."""
    return runtime.facility(WhatsApp)
