"""The live-support feature's setup: the waiting queue, room logs, the hub, the desk and the
call signaling relay (calls are made over the same socket)."""

from __future__ import annotations

from core.consent.gate import has_consent
from service.consent.facility import ConsentFacility
from service.rtc.relay import SignalRelay
from service.rtc.stores import create_signal_store
from service.runtime import Runtime
from service.support.desk import SupportDesk
from service.support.drain import SupportDrain
from service.support.history import HistoryWriter
from service.support.hub import RoomHub
from service.support.people import Person
from service.support.roomlog import RoomLog
from service.support.stores import create_history_feed, create_room_log, create_wait_queue
from service.telegram.jobs import notify_new_customer
from service.whatsapp.crm import convo_lists_changed


async def setup(runtime: Runtime) -> None:
    settings = runtime.settings
    rooms = create_room_log(runtime.backends)
    hub = RoomHub(rooms)

    async def notify_waiting(person: Person, position: int) -> None:
        # The queue feature's setup runs after this one: read the job queue when needed.
        if runtime.queue is None:
            return
        await notify_new_customer(
            runtime.queue,
            settings,
            key=f"support-wait:{person.id}:{int(runtime.clock.now())}",
            name=person.name,
            at=runtime.clock.now(),
            position=position,
        )

    async def callback_allowed(subject: str | None, phone: str) -> bool:
        """A WhatsApp call back needs the visitor's granted, unexpired ``whatsapp`` consent."""
        if not subject:
            return False
        state = await runtime.facility(ConsentFacility).current(subject)
        return has_consent(state, "whatsapp", runtime.clock.now())

    desk = SupportDesk(
        settings,
        runtime.backends,
        runtime.db,
        create_wait_queue(runtime.backends),
        rooms,
        hub,
        clock=runtime.clock.now,
        notify_waiting=notify_waiting,
        callback_allowed=callback_allowed,
    )
    runtime.provide(SupportDesk, desk)
    runtime.add_component(_RoomLogCloser(rooms))
    # The embedded feed lives in this process's memory: its writer must run here, whatever
    # the worker setting says.
    if runtime.runs_worker or runtime.backends.kind == "memory":
        writer = runtime.provide(HistoryWriter, _history_writer(runtime))
        # Before the desk: stopped after it, so what the desk's last sends stored is written.
        runtime.add_component(writer)

        async def history_details() -> dict[str, object]:
            return {"writer_healthy": writer.healthy, "backlog": await writer.backlog()}

        runtime.add_readiness_info("support_history", history_details)
    runtime.add_component(hub)
    runtime.add_component(desk)
    relay = SignalRelay(
        settings,
        runtime.backends,
        create_signal_store(runtime.backends),
        desk,
        clock=runtime.clock.now,
    )
    runtime.provide(SignalRelay, relay)
    runtime.add_component(relay)
    runtime.add_readiness_info("calls", relay.readiness)
    # Last of the feature's components: stopped first, while the desk and the hub still run.
    drain = runtime.provide(SupportDrain, SupportDrain(settings.support_drain_seconds))
    runtime.add_component(drain)
    runtime.add_readiness_check("support_drain", drain.readiness)


def _history_writer(runtime: Runtime) -> HistoryWriter:
    """The chat history's writer: it takes the messages every process stored (the history
    feed) into the CRM's tables."""

    async def lists_changed() -> None:
        # Chats are CRM conversations (channel web): their lists' caches are stale now.
        await convo_lists_changed(runtime.backends)

    return HistoryWriter(
        runtime.db, create_history_feed(runtime.backends), on_written=lists_changed
    )


class _RoomLogCloser:
    """Closes the room log's own connections after the hub (started before it) has stopped."""

    def __init__(self, rooms: RoomLog) -> None:
        self._rooms = rooms

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        await self._rooms.close()
