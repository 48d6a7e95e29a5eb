"""Delivery status rules for outbound messages: a status never moves backwards.

WhatsApp delivers status webhooks out of order (a ``delivered`` may arrive after ``read``) and
more than once. The stored status is the furthest progress seen; every state's first timestamp
is kept even when the state arrives too late to change the status.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MessageStatus = Literal["queued", "sent", "delivered", "read", "failed"]

#: Progress order of the successful path.
RANK: dict[str, int] = {"queued": 0, "sent": 1, "delivered": 2, "read": 3}
STATUS_NAMES: tuple[MessageStatus, ...] = ("queued", "sent", "delivered", "read", "failed")


@dataclass(frozen=True, slots=True)
class StatusState:
    status: MessageStatus
    sent_at: float | None = None
    delivered_at: float | None = None
    read_at: float | None = None
    failed_at: float | None = None


def next_status(current: MessageStatus, incoming: MessageStatus) -> MessageStatus:
    """The status after ``incoming`` is observed on a message that is ``current``.

    ``failed`` only wins over ``queued``/``sent``: once the recipient's phone confirmed delivery
    a late failure report cannot undo it. Nothing moves a ``failed`` message except proof that it
    did arrive (``delivered``/``read``), which WhatsApp does send after a transient failure.
    """
    if incoming == current:
        return current
    if incoming == "failed":
        return "failed" if RANK[current] <= RANK["sent"] else current
    if current == "failed":
        return incoming if RANK[incoming] >= RANK["delivered"] else current
    return incoming if RANK[incoming] > RANK[current] else current


def apply_status(state: StatusState, incoming: MessageStatus, at: float) -> StatusState:
    """``state`` after ``incoming`` observed at ``at`` (the earliest time per state is kept)."""
    stamps = {
        name: getattr(state, f"{name}_at") for name in ("sent", "delivered", "read", "failed")
    }
    if incoming in stamps:
        previous = stamps[incoming]
        if previous is None or at < previous:
            stamps[incoming] = at
    return StatusState(
        status=next_status(state.status, incoming),
        sent_at=stamps["sent"],
        delivered_at=stamps["delivered"],
        read_at=stamps["read"],
        failed_at=stamps["failed"],
    )
