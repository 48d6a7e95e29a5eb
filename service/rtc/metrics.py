"""Prometheus metrics of calls and their signaling."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from service.metrics import REGISTRY

CALLS_ACTIVE = Gauge(
    "kervan_rtc_calls_active",
    "Calls started and not ended, across every process (as last read from the state backend).",
    registry=REGISTRY,
)
CALLS_STARTED = Counter(
    "kervan_rtc_calls_started_total", "Calls started (call:start taken).", registry=REGISTRY
)
CALLS_ENDED = Counter(
    "kervan_rtc_calls_ended_total",
    "Calls ended, by outcome: connected (the media connected: success), rejected, missed "
    "(not answered in time), failed (ended before the media connected).",
    ["outcome"],
    registry=REGISTRY,
)
SETUP_SECONDS = Histogram(
    "kervan_rtc_call_setup_seconds",
    "From call:start to connected media, as the clients report it.",
    buckets=(0.25, 0.5, 1, 1.5, 2, 3, 5, 8, 13, 20, 30, 60),
    registry=REGISTRY,
)
ICE_RESTARTS = Counter(
    "kervan_rtc_ice_restarts_total", "ICE-restart offers relayed.", registry=REGISTRY
)
SIGNALS = Counter(
    "kervan_rtc_signals_total",
    "Signaling frames taken from clients, by type and outcome (accepted, duplicate, gap, "
    "overflow, busy, unknown, forbidden, refused, ended).",
    ["type", "outcome"],
    registry=REGISTRY,
)
RETRANSMITS = Counter(
    "kervan_rtc_signal_retransmits_total",
    "Signaling frames sent to a client again (not acknowledged in time).",
    registry=REGISTRY,
)
RESUMES = Counter(
    "kervan_rtc_signal_resumes_total",
    "Calls resumed by a reconnecting client (hello.calls).",
    registry=REGISTRY,
)
OVERFLOWS = Counter(
    "kervan_rtc_window_overflows_total",
    "Signaling frames refused because a window was full (the peer is too far behind).",
    ["side"],
    registry=REGISTRY,
)
RTT_SECONDS = Histogram(
    "kervan_rtc_rtt_seconds",
    "Round-trip time of calls' media, as the clients report it (call:stats).",
    buckets=(0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 2),
    registry=REGISTRY,
)
JITTER_SECONDS = Histogram(
    "kervan_rtc_jitter_seconds",
    "Jitter of calls' media, as the clients report it (call:stats).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2),
    registry=REGISTRY,
)
PACKET_LOSS = Histogram(
    "kervan_rtc_packet_loss_ratio",
    "Packet loss of calls' media (0..1), as the clients report it (call:stats).",
    buckets=(0.0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0),
    registry=REGISTRY,
)
QUALITY_CHANGES = Counter(
    "kervan_rtc_quality_changes_total",
    "Media changes clients reported (call:quality), by mode and reason.",
    ["mode", "reason"],
    registry=REGISTRY,
)
CONTROLS = Counter(
    "kervan_rtc_controls_total",
    "Admins' call:control requests, by action.",
    ["action"],
    registry=REGISTRY,
)
TURN_SELECTED_REGION = Counter(
    "kervan_turn_selected_region_total",
    "Calls' selected TURN region, counted once per call and region (call:stats).",
    ["region"],
    registry=REGISTRY,
)
TURN_FAILOVERS = Counter(
    "kervan_rtc_turn_failovers_total",
    "A call's media moved to another TURN region.",
    registry=REGISTRY,
)
AUDIO_OUTPUT = Counter(
    "kervan_audio_output_selection_total",
    "Audio outputs clients chose (device:audio-output), per type; no personal data.",
    ["device_type"],
    registry=REGISTRY,
)
