"""The WhatsApp feature's setup: the facility, its inbound hook, queue handlers, the CRM desk,
the recovery of stored but unprocessed webhooks, and retention."""

from __future__ import annotations

from service.runtime import Runtime
from service.tracking.links import link_inbound
from service.whatsapp.desk import CrmDesk
from service.whatsapp.facility import WhatsApp, build_whatsapp
from service.whatsapp.jobs import inbound_hook, register_whatsapp_handlers
from service.whatsapp.recovery import WebhookRecovery
from service.whatsapp.retention import RetentionTask
from service.whatsapp.testing import processing_hold


async def setup(runtime: Runtime) -> None:
    settings = runtime.settings
    whatsapp = runtime.provide(
        WhatsApp,
        build_whatsapp(
            runtime,
            max_group=settings.whatsapp_webhook_max_group,
            group_wait=settings.whatsapp_webhook_group_wait_ms / 1000,
        ),
    )
    whatsapp.processor.hooks.append(inbound_hook(whatsapp))
    # Lead tracking: a message naming a click's reference code links that intent to its convo.
    whatsapp.processor.hooks.append(link_inbound)
    whatsapp.processor.hold = processing_hold(runtime.settings)
    register_whatsapp_handlers(whatsapp, runtime.handlers)
    runtime.provide(CrmDesk, CrmDesk(runtime))
    runtime.add_component(whatsapp)
    # After the facility: started once it is, stopped before it (its groups then drain).
    runtime.add_component(WebhookRecovery(runtime, whatsapp.processor))
    runtime.add_component(RetentionTask(runtime))
