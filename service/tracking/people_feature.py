"""Setup of the people part of lead tracking: ``PersonAuth`` (people's login codes and
sessions) and the e-mail queue's handler (when SMTP is configured).

Called from the tracking feature's setup (``service/tracking/feature.py``), which runs before
the queue feature, so the ``mail`` handler is registered before a worker starts. The WhatsApp
link of intents to conversations is an inbound hook the WhatsApp feature installs
(``service/tracking/links.py``).
"""

from __future__ import annotations

from service.runtime import Runtime
from service.tracking.mail import install_mail
from service.tracking.people_auth import PersonAuth


async def setup(runtime: Runtime) -> None:
    runtime.provide(PersonAuth, PersonAuth(runtime))
    install_mail(runtime)
