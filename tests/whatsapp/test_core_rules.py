# ruff: noqa: RUF001  (Turkish text legitimately contains the dotless i)
from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.i18n import resolve_locale
from core.whatsapp.faq import FaqResponder
from core.whatsapp.graph_errors import ErrorAction, classify_error
from core.whatsapp.keywords import detect_keyword
from core.whatsapp.status import RANK, StatusState, apply_status, next_status
from core.whatsapp.texts import unsubscribe_line, with_unsubscribe_line
from core.whatsapp.unsubscribe import make_token, read_token
from core.whatsapp.window import SERVICE_WINDOW_SECONDS, window_closes_at, window_open

WEBHOOK_STATES = ("sent", "delivered", "read", "failed")


def test_late_delivered_after_read_keeps_read_but_records_time() -> None:
    state = StatusState("queued")
    state = apply_status(state, "sent", 10)
    state = apply_status(state, "read", 30)
    state = apply_status(state, "delivered", 20)
    assert state.status == "read"
    assert (state.sent_at, state.delivered_at, state.read_at) == (10, 20, 30)


def test_duplicate_status_keeps_earliest_timestamp() -> None:
    state = apply_status(apply_status(StatusState("sent"), "delivered", 50), "delivered", 40)
    assert state.delivered_at == 40
    assert apply_status(state, "delivered", 60).delivered_at == 40


@pytest.mark.parametrize(
    ("current", "incoming", "expected"),
    [
        ("queued", "failed", "failed"),
        ("sent", "failed", "failed"),
        ("delivered", "failed", "delivered"),
        ("read", "failed", "read"),
        ("failed", "sent", "failed"),
        ("failed", "delivered", "delivered"),
        ("failed", "read", "read"),
        ("read", "sent", "read"),
        ("sent", "read", "read"),
    ],
)
def test_transition_table(current: str, incoming: str, expected: str) -> None:
    assert next_status(current, incoming) == expected  # type: ignore[arg-type]


@settings(max_examples=100)
@given(st.lists(st.sampled_from(WEBHOOK_STATES), min_size=1, max_size=8))
def test_success_path_never_moves_backwards(sequence: list[str]) -> None:
    state = StatusState("queued")
    best = 0
    for step, incoming in enumerate(sequence):
        state = apply_status(state, incoming, float(step))  # type: ignore[arg-type]
        if state.status != "failed":
            assert RANK[state.status] >= best
            best = RANK[state.status]


def test_final_status_does_not_depend_on_arrival_order() -> None:
    for order in itertools.permutations(("sent", "delivered", "read")):
        state = StatusState("queued")
        for incoming in order:
            state = apply_status(state, incoming, 1.0)  # type: ignore[arg-type]
        assert state.status == "read", order


@pytest.mark.parametrize(
    "text",
    [
        "STOP",
        "stop",
        " Stop ",
        "STOP!",
        "DUR",
        "dur.",
        "Dur",
        "STOPP",
        "stopp",
        "UNSUBSCRIBE",
        "unsubscrıbe",
        "UNSUBSCRİBE",
        "Unsubscribe",
    ],
)
def test_stop_keywords(text: str) -> None:
    assert detect_keyword(text) == "stop"


@pytest.mark.parametrize("text", ["START", "start", "Start!", "START "])
def test_start_keyword(text: str) -> None:
    assert detect_keyword(text) == "start"


@pytest.mark.parametrize(
    "text", [None, "", "don't stop", "stop by tomorrow", "durum nedir", "starter", "STOP" * 40]
)
def test_non_keywords(text: str | None) -> None:
    assert detect_keyword(text) is None


def test_service_window() -> None:
    assert not window_open(None, 1000.0)
    assert window_open(1000.0, 1000.0)
    assert window_open(1000.0, 1000.0 + SERVICE_WINDOW_SECONDS - 1)
    assert not window_open(1000.0, 1000.0 + SERVICE_WINDOW_SECONDS)
    assert window_closes_at(1000.0) == 1000.0 + SERVICE_WINDOW_SECONDS
    assert window_closes_at(None) is None


@pytest.mark.parametrize(
    ("status", "code", "timed_out", "expected"),
    [
        (None, None, False, ErrorAction.RETRY),
        (200, None, True, ErrorAction.RETRY),
        (429, None, False, ErrorAction.RETRY),
        (500, None, False, ErrorAction.RETRY),
        (503, 131016, False, ErrorAction.RETRY),
        (400, 130429, False, ErrorAction.RETRY),
        (400, 131056, False, ErrorAction.RETRY),
        (400, 131047, False, ErrorAction.NEEDS_TEMPLATE),
        (400, 100, False, ErrorAction.NO_RETRY),
        (401, 190, False, ErrorAction.NO_RETRY),
        (400, 131026, False, ErrorAction.NO_RETRY),
        (404, None, False, ErrorAction.NO_RETRY),
    ],
)
def test_graph_error_classes(
    status: int | None, code: int | None, timed_out: bool, expected: ErrorAction
) -> None:
    assert classify_error(status, code, timed_out=timed_out) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "tr"),
        ("", "tr"),
        ("tr", "tr"),
        ("de-AT", "de"),
        ("DE", "de"),
        ("en_GB", "en"),
        ("fr", "en"),
    ],
)
def test_locale_resolution(value: str | None, expected: str) -> None:
    assert resolve_locale(value) == expected


def test_unsubscribe_lines_per_language() -> None:
    url = "https://x.test/u/abc"
    assert unsubscribe_line("tr", url) == f"Bu mesajları artık almak istemiyorsanız: {url}"
    assert unsubscribe_line("de", url).startswith("Wenn Sie diese Nachrichten")
    assert unsubscribe_line("en", url) == f"To stop receiving these messages: {url}"
    assert with_unsubscribe_line("Kampanya!", None, url).startswith("Kampanya!\n\nBu mesajları")


def test_unsubscribe_token_round_trip_and_forgery() -> None:
    token = make_token("s3cret", 12345)
    assert len(token) < 30
    assert read_token("s3cret", token) == 12345
    assert read_token("other", token) is None
    id_part, mac = token.split(".")
    assert read_token("s3cret", f"{id_part}1.{mac}") is None
    assert read_token("s3cret", f"{id_part}.{mac[:-1]}A") is None
    for junk in ("", ".", "abc", "a.b.c", "ZZ.abc", "é.x", "1" * 100):
        assert read_token("s3cret", junk) is None
    with pytest.raises(ValueError):
        make_token("", 1)


@settings(max_examples=50)
@given(st.integers(min_value=0, max_value=2**62))
def test_tokens_round_trip_for_any_id(contact_id: int) -> None:
    assert read_token("k", make_token("k", contact_id)) == contact_id


def test_faq_responder_matches_whole_words() -> None:
    responder = FaqResponder({"kargo": "Kargonuz yolda.", "iade": "İade 14 gün içinde."})
    assert responder.answer("Kargo ne zaman gelir?") == "Kargonuz yolda."
    assert responder.answer("İADE yapmak istiyorum") == "İade 14 gün içinde."
    assert responder.answer("kargocu geldi") is None
    assert responder.answer(None) is None
    assert FaqResponder({}).answer("kargo") is None
