"""Route modules, mounted by ``service.app.create_app`` in this order.

Each module exposes ``routes: list[BaseRoute]`` and may define ``async def setup(runtime)`` to
attach its components and readiness checks. Add one line per feature module.
"""

ROUTE_MODULES: list[str] = [
    "service.routes.health",
    "service.routes.index",
    "service.routes.docs",
    "service.routes.admin_lockouts",
    "service.routes.consent",
    "service.routes.flows",
    "service.routes.speculation",
    "service.routes.images",
    "service.routes.whatsapp",
    "service.routes.admin_jobs",
    "service.routes.crm",
    "service.routes.admin_auth",
    "service.routes.support",
    "service.routes.static",
    "service.routes.rtc",
    "service.routes.tracking_script",
    "service.routes.tracking_people",
    "service.routes.tracking_sites",
    "service.routes.tracking_intents",
    "service.routes.tracking_ingest",
    "service.routes.tracking_dashboard",
    "service.routes.tracking_ads",
    "service.routes.tracking_trash",
    "service.routes.audit",
    "service.routes.tracking_usage",
    "service.routes.tracking_export",
]
