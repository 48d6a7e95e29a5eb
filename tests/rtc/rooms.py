"""A customer and an admin in one support room of a served desk: the two sides of a call.

``in_a_room(desk)`` connects a customer to ``/ws/support``, has it join the queue, connects an
admin (a real account and session) who is handed the customer, and yields both connections with
what each side authenticates ``GET /rtc/ice-servers`` with: the admin's session token and the
customer's resume token. The signaling tests start their calls from here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from tests.support.wsclient import Client, Desk, admin_token


@dataclass
class Room:
    desk: Desk
    room: str
    customer: Client
    admin: Client
    #: ``Authorization: Bearer`` of each side: a session token, and the welcome's resume token.
    admin_token: str
    resume_token: str

    @property
    def http_url(self) -> str:
        return http_url(self.desk)

    @property
    def customer_id(self) -> str:
        return str(self.customer.welcome["person"])

    @property
    def admin_id(self) -> str:
        return str(self.admin.welcome["person"])


def http_url(desk: Desk) -> str:
    """The served app's HTTP base URL (``Desk.url`` is its ``ws://`` one)."""
    return "http://" + desk.url.removeprefix("ws://")


@asynccontextmanager
async def in_a_room(
    desk: Desk, *, admin_name: str = "mert", customer_name: str = "Ayşe"
) -> AsyncIterator[Room]:
    token = await admin_token(desk.runtime, admin_name)
    async with desk.customer(customer_name) as customer:
        await customer.send({"type": "queue:join"})
        await customer.expect("queue:joined")
        async with desk.admin(token) as admin:
            room = str(customer.welcome["person"])
            await customer.expect("queue:ready", room=room)
            await admin.expect("room:joined", room=room)
            yield Room(desk, room, customer, admin, token, str(customer.welcome["resume"]))
