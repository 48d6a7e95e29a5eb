"""Properties over random histories: the chain verifies, the gate agrees with the log."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from core.consent.chain import ChainHead, ConsentEvent, verify_chain
from core.consent.gate import has_consent
from core.consent.model import ConsentState
from core.consent.transitions import apply_choices, apply_withdrawal

from .helpers import BANNER, REGISTRY, T0

PURPOSES = list(REGISTRY.names)
choice_step = st.tuples(
    st.just("choose"),
    st.dictionaries(st.sampled_from(PURPOSES), st.sampled_from(["granted", "denied"]), min_size=1),
    st.integers(min_value=0, max_value=400 * 86_400),
)
withdraw_step = st.tuples(
    st.just("withdraw"),
    st.lists(st.sampled_from(PURPOSES), min_size=1, unique=True),
    st.integers(min_value=0, max_value=400 * 86_400),
)
histories = st.lists(st.one_of(choice_step, withdraw_step), min_size=1, max_size=12)


def replay(steps: list[tuple[str, object, int]]) -> tuple[ConsentState, list[ConsentEvent], float]:
    state = ConsentState("prop-subject")
    events: list[ConsentEvent] = []
    now = T0
    for kind, arg, gap in steps:
        now += gap
        if kind == "choose":
            move = apply_choices(
                state,
                arg,
                source="api",
                now=now,
                registry=REGISTRY,
                banner=BANNER,  # type: ignore[arg-type]
            )
        else:
            move = apply_withdrawal(
                state,
                source="unsubscribe_link",
                now=now,
                registry=REGISTRY,
                banner=BANNER,
                purposes=arg,  # type: ignore[arg-type]
            )
        state = move.state
        events.extend(move.events)
    return state, events, now


@settings(max_examples=60, deadline=None)
@given(histories, st.integers(min_value=0, max_value=500 * 86_400))
def test_gate_follows_the_latest_event_per_purpose(
    steps: list[tuple[str, object, int]], later: int
) -> None:
    state, events, now = replay(steps)
    check_at = now + later
    for purpose in PURPOSES:
        latest = [event for event in events if event.purpose == purpose]
        expected = (
            bool(latest)
            and latest[-1].value == "granted"
            and (check_at * 1000 < latest[-1].expires_at_ms)
        )
        assert has_consent(state, purpose, check_at) == expected


@settings(max_examples=60, deadline=None)
@given(histories, st.data())
def test_any_single_edit_is_detected(
    steps: list[tuple[str, object, int]], data: st.DataObject
) -> None:
    state, events, _ = replay(steps)
    heads = {state.subject: ChainHead(state.seq, state.head_hash)}
    assert verify_chain(events, heads).ok
    index = data.draw(st.integers(min_value=0, max_value=len(events) - 1), label="index")
    field = data.draw(st.sampled_from(["value", "source", "ts_ms", "purpose", "expires_at_ms"]))
    original = events[index]
    changed = {
        "value": "granted" if original.value == "denied" else "denied",
        "source": "admin" if original.source != "admin" else "api",
        "ts_ms": original.ts_ms + 1,
        "purpose": "ads" if original.purpose != "ads" else "email",
        "expires_at_ms": original.expires_at_ms + 1000,
    }[field]
    tampered = list(events)
    tampered[index] = replace(original, **{field: changed})
    report = verify_chain(tampered, heads)
    assert not report.ok
    assert report.breaks[0].seq == original.seq
