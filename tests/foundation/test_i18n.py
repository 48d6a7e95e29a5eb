"""Choosing the end user's language."""

from __future__ import annotations

import pytest

from core.i18n import from_accept_language, resolve_locale


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, "tr"),
        ("", "tr"),
        ("de-AT,de;q=0.9,en;q=0.8", "de"),
        ("fr-FR, fr;q=0.9, de;q=0.5", "de"),  # first supported, not first listed
        ("en;q=0.4, tr;q=0.9", "tr"),  # weights, not order
        ("de;q=0, en", "en"),  # q=0 means "not this one"
        ("fr, es", "en"),  # only unsupported languages
        ("*", "en"),
        ("de;q=abc, tr", "tr"),  # a broken weight drops that entry only
    ],
)
def test_accept_language(header: str | None, expected: str) -> None:
    assert from_accept_language(header) == expected


@pytest.mark.parametrize(
    ("value", "expected"), [(None, "tr"), ("de_DE", "de"), ("EN-gb", "en"), ("ru", "en")]
)
def test_resolve_locale(value: str | None, expected: str) -> None:
    assert resolve_locale(value) == expected
