"""The call frames of ``/ws/support``: signaling relayed reliably between a call's two members.

Every call-scoped client frame carries the ``call`` id (chosen by the caller in ``call:start``)
and ``seq``, the sender's own sequence in that call (1, 2, 3, ...). The server takes them in
order and once, and answers each with ``rtc:ack`` (cumulative ``ack`` and selective ``sack``).
A relayed frame reaches the other member with the same ``type``, ``from`` (the sender) and the
recipient's own downlink ``seq``; the client delivers those in order, drops duplicates by
``seq``, and acknowledges with its own ``rtc:ack``. Unacknowledged frames are sent again with
exponential backoff. After a reconnect (to any process) the client names each call and its last
delivered ``seq`` in ``hello.calls``; the first frame about that call is then ``rtc:resumed``.

This module knows nothing of ``protocol.py``; that module adds these models to its tables.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, create_model

CallId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{8,64}$")]
RoomRef = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,80}$")]
Seq = Annotated[int, Field(ge=1, le=2**31 - 1)]
Region = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,40}$")]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Signal(_In):
    call: CallId
    seq: Seq


class CallStart(_Signal):
    """Ring the other member of ``room``; a room has at most one call at a time."""

    type: Literal["call:start"]
    room: RoomRef
    media: Literal["audio", "video"] = "audio"


class CallAccept(_Signal):
    type: Literal["call:accept"]


class CallReject(_Signal):
    type: Literal["call:reject"]
    reason: Literal["declined", "busy", "unsupported"] = "declined"


class CallEnd(_Signal):
    type: Literal["call:end"]
    reason: Literal["hangup", "failed", "network", "timeout"] = "hangup"


class SessionDescription(_In):
    type: Literal["offer", "answer", "pranswer", "rollback"]
    sdp: str = Field(max_length=12_000)


class RtcDescription(_Signal):
    """An offer or answer; ``ice_restart`` marks an ICE-restart offer (counted)."""

    type: Literal["rtc:description"]
    description: SessionDescription
    ice_restart: bool = False


class IceCandidate(_In):
    candidate: str = Field(max_length=1024)
    sdpMid: str | None = Field(default=None, max_length=64)  # the RTCIceCandidateInit names
    sdpMLineIndex: int | None = Field(default=None, ge=0, le=255)
    usernameFragment: str | None = Field(default=None, max_length=256)


class RtcIceCandidate(_Signal):
    """One ICE candidate; ``candidate: null`` is the end of candidates."""

    type: Literal["rtc:ice:candidate"]
    candidate: IceCandidate | None


class CallStats(_Signal):
    """Quality as the client measures it (``getStats()``): relayed to the admin, aggregated
    into metrics. ``setup_ms``: the time from ``call:start`` to connected media, sent once."""

    type: Literal["call:stats"]
    rtt_ms: float | None = Field(default=None, ge=0, le=60_000)
    jitter_ms: float | None = Field(default=None, ge=0, le=60_000)
    packet_loss: float | None = Field(default=None, ge=0, le=1)
    codec: str | None = Field(default=None, pattern=r"^[A-Za-z0-9/._-]{1,40}$")
    candidate_pair: Literal["host", "srflx", "prflx", "relay"] | None = None
    region: Region | None = Field(default=None, description="The TURN region in use.")
    setup_ms: float | None = Field(default=None, ge=0, le=600_000)


class AudioOutput(_Signal):
    """Which audio output the client chose; counted per type, nothing else is kept."""

    type: Literal["device:audio-output"]
    device_type: Literal["speaker", "earpiece", "headset", "bluetooth", "default"]


class CallControl(_Signal):
    """The admin asks the customer's client for an ICE restart or audio only."""

    type: Literal["call:control"]
    action: Literal["ice_restart", "audio_only"]


class CallQuality(_Signal):
    """The client changed its media, e.g. fell back to audio only on high loss."""

    type: Literal["call:quality"]
    mode: Literal["audio_only", "audio_video"]
    reason: Literal["high_loss", "high_rtt", "bandwidth", "user", "recovered", "admin"] | None = (
        None
    )


class RtcAck(_In):
    """Acknowledges the server's frames of ``call``: every ``seq`` up to ``ack`` and those in
    ``sack`` (received out of order; the server then does not resend them)."""

    type: Literal["rtc:ack"]
    call: CallId
    ack: int = Field(ge=0, le=2**31 - 1)
    sack: list[Seq] = Field(default_factory=list, max_length=32)


class CallPosition(_In):
    room: RoomRef
    delivered: int = Field(ge=0, le=2**31 - 1, description="The last `seq` delivered in order.")


SIGNAL_MESSAGES: tuple[type[_Signal], ...] = (
    CallStart,
    CallAccept,
    CallReject,
    CallEnd,
    RtcDescription,
    RtcIceCandidate,
    CallStats,
    AudioOutput,
    CallControl,
    CallQuality,
)
RTC_CLIENT_MESSAGES: tuple[type[_In], ...] = (*SIGNAL_MESSAGES, RtcAck)
SignalMessage = (
    CallStart
    | CallAccept
    | CallReject
    | CallEnd
    | RtcDescription
    | RtcIceCandidate
    | CallStats
    | AudioOutput
    | CallControl
    | CallQuality
)
#: Kept by the server (numbered and acknowledged, not relayed).
NOT_RELAYED = frozenset({"device:audio-output"})
RTC_ADMIN_ONLY = frozenset({"call:control"})


# --- server -> client ----------------------------------------------------------------------


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _relayed(model: type[_Signal]) -> type[BaseModel]:
    """The frame a member receives: the sender's fields, ``from`` and the downlink ``seq``."""
    fields: dict[str, Any] = {
        name: (info.annotation, info)
        for name, info in model.model_fields.items()
        if name not in ("seq",)
    }
    fields["seq"] = (int, Field(ge=1, description="The recipient's downlink sequence."))
    fields["from_"] = (
        str,
        Field(alias="from", description="The sender's person id, or `kervan` for the server."),
    )
    relayed: type[BaseModel] = create_model(
        f"Relayed{model.__name__}",
        __base__=_Out,
        __doc__=f"Relayed to the other member: {model.__doc__ or model.__name__}",
        **fields,
    )
    return relayed


class ServerCallEnd(_Out):
    """The call ended: sent by the other member, or by ``kervan`` (the room closed, nobody
    answered in time: ``missed``)."""

    type: Literal["call:end"]
    call: str
    seq: int = Field(ge=1)
    from_: str = Field(alias="from")
    reason: str


class RtcAckOut(_Out):
    """The server took every ``seq`` of the client's up to ``ack``; ``sack``: later ones held
    while an earlier one is missing. ``sack`` is advisory (as in TCP): keep every frame until
    ``ack`` covers it, and resend the frames after ``ack`` when told ``window_overflow`` or
    when no acknowledgement comes in time; the server may drop frames it held."""

    type: Literal["rtc:ack"]
    call: str
    ack: int = Field(ge=0)
    sack: list[int]


class RtcResumed(_Out):
    """First frame about a call after a resume: the server continues after ``delivered``
    (everything later follows, in order), and took the client's frames up to ``received``
    (the client resends its later ones)."""

    type: Literal["rtc:resumed"]
    call: str
    delivered: int = Field(ge=0)
    received: int = Field(ge=0)
    state: Literal["ringing", "active", "ended", "unknown"]


RTC_SERVER_MESSAGES: tuple[type[BaseModel], ...] = (
    *(_relayed(m) for m in SIGNAL_MESSAGES if m.__name__ not in ("CallEnd", "AudioOutput")),
    ServerCallEnd,
    RtcAckOut,
    RtcResumed,
)
