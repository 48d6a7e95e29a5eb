"""The WhatsApp feature's setup: the facility, its inbound hook, queue handlers, the CRM desk
and retention."""

from __future__ import annotations

from service.runtime import Runtime
from service.whatsapp.desk import CrmDesk
from service.whatsapp.facility import WhatsApp, build_whatsapp
from service.whatsapp.jobs import inbound_hook, register_whatsapp_handlers
from service.whatsapp.retention import RetentionTask


async def setup(runtime: Runtime) -> None:
    whatsapp = runtime.provide(WhatsApp, build_whatsapp(runtime))
    whatsapp.processor.hooks.append(inbound_hook(whatsapp))
    register_whatsapp_handlers(whatsapp, runtime.handlers)
    runtime.provide(CrmDesk, CrmDesk(runtime))
    runtime.add_component(whatsapp)
    runtime.add_component(RetentionTask(runtime))
