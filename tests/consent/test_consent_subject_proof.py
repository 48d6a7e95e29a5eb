"""Subject proofs: only kervan's key makes them, each proves exactly one subject."""

from __future__ import annotations

import pytest

from core.consent.subject_proof import (
    derive_subject_key,
    proves_subject,
    subject_cookie,
    subject_from_cookie,
    subject_proof,
)
from core.consent.token import derive_token_key

KEY = derive_subject_key("a-root-secret-of-at-least-32-bytes!!")
OLD = derive_subject_key("the-previous-root-secret-32-bytes!!!")


def test_proof_round_trip_and_rotation() -> None:
    proof = subject_proof("user.7", KEY)
    assert proves_subject("user.7", proof, [KEY])
    assert proves_subject("user.7", subject_proof("user.7", OLD), [KEY, OLD])
    assert not proves_subject("user.7", subject_proof("user.7", OLD), [KEY])


@pytest.mark.parametrize(
    "presented",
    ["", "x", "user.7", "ü" * 43],
)
def test_garbage_never_proves(presented: str) -> None:
    assert not proves_subject("user.7", presented, [KEY])


def test_proof_is_bound_to_its_subject() -> None:
    assert not proves_subject("user.8", subject_proof("user.7", KEY), [KEY])
    # A different label: consent-token keys from the same root never make subject proofs.
    token_key = derive_token_key("a-root-secret-of-at-least-32-bytes!!")
    assert token_key != KEY
    assert not proves_subject("user.7", subject_proof("user.7", token_key), [KEY])


def test_cookie_carries_a_subject_with_dots() -> None:
    cookie = subject_cookie("first.last@example", KEY)
    assert subject_from_cookie(cookie, [KEY]) == "first.last@example"


@pytest.mark.parametrize(
    "cookie",
    ["", "no-separator", ".proofonly", "user.7.", "user.7.tampered"],
)
def test_bad_cookies_prove_nothing(cookie: str) -> None:
    assert subject_from_cookie(cookie, [KEY]) is None


def test_cookie_for_another_subject_is_refused() -> None:
    _, _, proof = subject_cookie("user.7", KEY).rpartition(".")
    assert subject_from_cookie(f"user.8.{proof}", [KEY]) is None
