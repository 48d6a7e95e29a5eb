"""The hash chain: intact logs verify, every kind of tampering is located."""

from __future__ import annotations

import itertools
from dataclasses import replace

from core.consent.chain import ChainHead, ConsentEvent, event_hash, seal, verify_chain
from core.consent.model import GENESIS_HASH, ConsentState
from core.consent.transitions import apply_choices, apply_withdrawal

from .helpers import BANNER, REGISTRY, T0


def history(subject: str = "anon-1") -> tuple[ConsentState, list[ConsentEvent]]:
    events: list[ConsentEvent] = []
    state = ConsentState(subject)
    steps: list[tuple[dict[str, str], str]] = [
        ({"analytics": "granted", "ads": "denied"}, "banner"),
        ({"ads": "granted"}, "api"),
        ({"whatsapp": "granted"}, "admin"),
    ]
    for offset, (choices, source) in enumerate(steps):
        move = apply_choices(
            state, choices, source=source, now=T0 + offset, registry=REGISTRY, banner=BANNER
        )
        state = move.state
        events.extend(move.events)
    move = apply_withdrawal(
        state,
        source="whatsapp_keyword",
        now=T0 + 10,
        registry=REGISTRY,
        banner=BANNER,
        purposes=["whatsapp"],
    )
    events.extend(move.events)
    return move.state, events


def head(state: ConsentState) -> dict[str, ChainHead]:
    return {state.subject: ChainHead(state.seq, state.head_hash)}


def test_intact_chain_verifies() -> None:
    state, events = history()
    assert [event.seq for event in events] == [1, 2, 3, 4, 5]
    assert events[0].prev_hash == GENESIS_HASH
    assert all(later.prev_hash == earlier.hash for earlier, later in itertools.pairwise(events))
    assert state.head_hash == events[-1].hash
    report = verify_chain(events, head(state))
    assert report.ok and report.checked == 5 and report.breaks == ()


def test_interleaved_subjects_verify_independently() -> None:
    state_a, events_a = history("a")
    state_b, events_b = history("b")
    mixed = [event for pair in zip(events_a, events_b, strict=True) for event in pair]
    assert verify_chain(mixed, {**head(state_a), **head(state_b)}).ok


def test_edited_event_is_reported_once_at_its_seq() -> None:
    state, events = history()
    events[1] = replace(events[1], value="granted" if events[1].value == "denied" else "denied")
    report = verify_chain(events, head(state))
    assert not report.ok
    assert [(item.seq, item.reason) for item in report.breaks] == [(2, "hash_mismatch")]


def test_edited_and_resealed_event_breaks_the_next_link() -> None:
    state, events = history()
    events[2] = seal(replace(events[2], source="admin"))
    report = verify_chain(events, head(state))
    assert [(item.seq, item.reason) for item in report.breaks] == [(4, "prev_hash_mismatch")]


def test_fully_rewritten_log_still_disagrees_with_the_state_head() -> None:
    state, events = history()
    rewritten: list[ConsentEvent] = []
    prev = GENESIS_HASH
    for event in events:
        forged = seal(replace(event, prev_hash=prev, source="admin"))
        rewritten.append(forged)
        prev = forged.hash
    report = verify_chain(rewritten, head(state))
    assert [(item.seq, item.reason) for item in report.breaks] == [(5, "head_mismatch")]


def test_deleted_middle_event_is_a_sequence_gap() -> None:
    state, events = history()
    del events[2]
    report = verify_chain(events, head(state))
    assert (report.breaks[0].seq, report.breaks[0].reason) == (4, "sequence_gap")


def test_deleted_newest_events_are_missing() -> None:
    state, events = history()
    report = verify_chain(events[:3], head(state))
    assert [(item.seq, item.reason) for item in report.breaks] == [(4, "missing_events")]
    # Without the state head, a truncated chain is indistinguishable from a short one.
    assert verify_chain(events[:3]).ok


def test_swapped_events_are_detected() -> None:
    state, events = history()
    events[1], events[2] = events[2], events[1]
    assert not verify_chain(events, head(state)).ok


def test_hash_is_stable_across_serialisation() -> None:
    _, events = history()
    for event in events:
        copy = ConsentEvent.from_json(event.to_json())
        assert copy == event
        assert event_hash(copy) == event.hash
