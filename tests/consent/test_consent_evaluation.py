"""Status views, what the banner asks, version re-prompt and Consent Mode v2."""

from __future__ import annotations

import pytest

from core.consent.banner import build_banner_policy
from core.consent.evaluation import evaluate, needs_prompt
from core.consent.model import ConsentState
from core.consent.transitions import apply_choices
from core.errors import ValidationFailed

from .helpers import BANNER, REGISTRY, T0, at, granted_state


def test_new_subject_is_asked_every_banner_purpose() -> None:
    view = evaluate(ConsentState("anon-1"), REGISTRY, BANNER, T0)
    assert view.needs_prompt == ["analytics", "ads", "personalization"]
    assert {name: item.status for name, item in view.purposes.items()} == dict.fromkeys(
        REGISTRY.names, "unknown"
    )
    assert set(view.consent_mode.values()) == {"denied"}


def test_only_expired_purposes_are_asked_again() -> None:
    state = granted_state("analytics", "ads", "personalization")
    # Ads (3 months) has expired, the others have not.
    now = at(2026, 4, 15) + 1
    assert needs_prompt(state, REGISTRY, BANNER, now) == ["ads"]
    view = evaluate(state, REGISTRY, BANNER, now)
    assert view.purposes["ads"].status == "expired"
    assert view.purposes["analytics"].status == "granted"
    assert needs_prompt(state, REGISTRY, BANNER, at(2026, 4, 15) - 1) == []


def test_refusal_is_not_asked_again_until_it_expires() -> None:
    state = granted_state("analytics", "ads", "personalization", value="denied")
    assert needs_prompt(state, REGISTRY, BANNER, T0 + 86_400 * 30) == []
    assert needs_prompt(state, REGISTRY, BANNER, at(2026, 4, 15) + 1) == ["ads"]


def test_answer_after_expiry_is_logged_as_reprompt_answer() -> None:
    state = granted_state("ads")
    later = apply_choices(
        state,
        {"ads": "denied"},
        source="banner",
        now=at(2026, 5, 1),
        registry=REGISTRY,
        banner=BANNER,
    )
    [event] = later.events
    assert (event.prior_status, event.action) == ("expired", "refuse")
    assert later.state.purposes["ads"].expires_at == at(2026, 8, 1)


def test_messaging_purposes_never_appear_in_banner_prompt() -> None:
    view = evaluate(ConsentState("anon-1"), REGISTRY, BANNER, T0)
    assert "whatsapp" not in view.needs_prompt
    assert view.purposes["whatsapp"].status == "unknown"


def test_new_banner_version_reprompts_only_touched_purposes() -> None:
    v1 = build_banner_policy("1")
    state = granted_state("analytics", "ads", "personalization", banner=v1)
    assert state.purposes["ads"].banner_version == "1"
    v2 = build_banner_policy("2", ["1", "2=ads|personalization"])
    view = evaluate(state, REGISTRY, v2, T0 + 10)
    assert view.needs_prompt == ["ads", "personalization"]
    assert view.purposes["ads"].stale and not view.purposes["analytics"].stale
    # The old choice stands until it is answered again.
    assert view.purposes["ads"].status == "granted"
    assert view.consent_mode["ad_storage"] == "granted"
    answered = apply_choices(
        state,
        {"ads": "granted", "personalization": "denied"},
        source="banner",
        now=T0 + 20,
        registry=REGISTRY,
        banner=v2,
    ).state
    assert needs_prompt(answered, REGISTRY, v2, T0 + 30) == []
    # Version 3 touches everything; choices made under 2 become stale again.
    v3 = build_banner_policy("3", ["1", "2=ads|personalization", "3=*"])
    assert needs_prompt(answered, REGISTRY, v3, T0 + 30) == ["analytics", "ads", "personalization"]


def test_choice_with_version_absent_from_history_counts_as_oldest() -> None:
    from dataclasses import replace

    state = granted_state("analytics", "ads")
    legacy = replace(
        state,
        purposes={
            name: replace(record, banner_version=None) for name, record in state.purposes.items()
        },
    )
    untouched = build_banner_policy("2", ["1", "2"])
    assert needs_prompt(legacy, REGISTRY, untouched, T0) == ["personalization"]
    touched = build_banner_policy("2", ["1", "2=analytics"])
    assert needs_prompt(legacy, REGISTRY, touched, T0) == ["analytics", "personalization"]


def test_unknown_banner_version_is_rejected() -> None:
    with pytest.raises(ValidationFailed) as info:
        apply_choices(
            ConsentState("anon-1"),
            {"ads": "granted"},
            source="banner",
            now=T0,
            registry=REGISTRY,
            banner=BANNER,
            banner_version="9",
        )
    assert info.value.details["known"] == ["1"]


def test_banner_history_must_end_with_current() -> None:
    with pytest.raises(ValidationFailed):
        build_banner_policy("1", ["1", "2"])
    with pytest.raises(ValidationFailed):
        build_banner_policy("2", ["1", "1"])
    assert build_banner_policy("2", ["1"]).versions == ("1", "2")


@pytest.mark.parametrize(
    ("granted", "expected"),
    [
        ((), ("denied", "denied", "denied", "denied")),
        (("analytics",), ("denied", "granted", "denied", "denied")),
        (("ads",), ("granted", "denied", "granted", "denied")),
        (("ads", "personalization"), ("granted", "denied", "granted", "granted")),
        (("personalization",), ("denied", "denied", "denied", "denied")),
    ],
)
def test_consent_mode_v2_signals(granted: tuple[str, ...], expected: tuple[str, ...]) -> None:
    state = granted_state(*granted) if granted else ConsentState("anon-1")
    mode = evaluate(state, REGISTRY, BANNER, T0 + 1).consent_mode
    keys = ("ad_storage", "analytics_storage", "ad_user_data", "ad_personalization")
    assert tuple(mode[key] for key in keys) == expected


def test_consent_mode_turns_denied_when_ads_expire() -> None:
    state = granted_state("ads", "personalization")
    mode = evaluate(state, REGISTRY, BANNER, at(2026, 4, 15)).consent_mode
    assert mode["ad_storage"] == "denied" and mode["ad_personalization"] == "denied"


@pytest.mark.parametrize(
    ("choices", "source"),
    [
        ({}, "banner"),
        ({"ads": "maybe"}, "banner"),
        ({"cookies": "granted"}, "banner"),
        ({"ads": "granted"}, "telepathy"),
    ],
)
def test_invalid_choices_are_rejected(choices: dict[str, str], source: str) -> None:
    with pytest.raises(ValidationFailed):
        apply_choices(
            ConsentState("anon-1"), choices, source=source, now=T0, registry=REGISTRY, banner=BANNER
        )


@pytest.mark.parametrize(
    "subject", ["", "a" * 65, "has space", "a/b", "ü-user", "x%2F", "=cmd", "-1", "@x", "+9"]
)
def test_invalid_subjects_are_rejected(subject: str) -> None:
    with pytest.raises(ValidationFailed):
        apply_choices(
            ConsentState(subject),
            {"ads": "granted"},
            source="api",
            now=T0,
            registry=REGISTRY,
            banner=BANNER,
        )


def test_longest_subject_is_accepted() -> None:
    assert granted_state("ads", subject="u" * 64).subject == "u" * 64
