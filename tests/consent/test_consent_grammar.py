"""The patterns /openapi.json publishes for the consent API accept exactly what the code accepts.

Each pattern is applied by the JSON-schema validator schemathesis checks with (jsonschema_rs,
ECMA-262 semantics: ``$`` is the end of the text) and compared with the code's own check on
generated text: alphabet characters, the whitespace that ``str.strip`` removes, the characters
where ECMA-262's ``\\s`` differs from it, and letters that upper-case into ASCII.
"""

from __future__ import annotations

import re
import string
from functools import cache

import jsonschema_rs
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import ValidationError

from core.consent.model import SUBJECT_PATTERN, validate_subject
from core.consent.purposes import build_registry, normalize_region
from core.errors import ValidationFailed
from service.consent import grammar
from service.consent.policy import policy_from_settings
from service.consent.schemas import SubjectPath, WithdrawQuery
from service.settings import Settings

# Characters around every rule: the ones the rules are about and the tricky neighbours.
TRICKY = "\t\n\x0b\x0c\r\x1c\x1f \x85\xa0\u2000\u3000\ufeff\u200bß\u0131\u017f\ufb00\u212a"
ALPHABET = string.ascii_letters + string.digits + "._:@+=-,/%? " + TRICKY
texts = st.text(alphabet=ALPHABET, max_size=80)


@cache
def _validator(pattern: str) -> jsonschema_rs.Validator:
    return jsonschema_rs.validator_for({"type": "string", "pattern": pattern})


def _search(pattern: str, text: str) -> bool:
    return _validator(pattern).is_valid(text)


def _code_accepts_subject(text: str) -> bool:
    try:
        validate_subject(text)
    except ValidationFailed:
        return False
    return True


def _model_accepts_subject(text: str) -> bool:
    try:
        SubjectPath.model_validate({"subject": text})
    except ValidationError:
        return False
    return True


@given(texts | st.from_regex(SUBJECT_PATTERN, fullmatch=True))
@example("abc\n")
@example("a" * 64)
@example("a" * 65)
@example("-a")
def test_subject_pattern_is_what_validate_subject_accepts(text: str) -> None:
    accepted = _code_accepts_subject(text)
    assert _search(grammar.SUBJECT, text) is accepted
    assert _model_accepts_subject(text) is accepted


def test_a_trailing_newline_is_not_a_subject() -> None:
    with pytest.raises(ValidationFailed):
        validate_subject("user-1\n")


def _code_accepts_region(text: str) -> bool:
    try:
        normalize_region(text)
    except ValidationFailed:
        return False
    return True


@given(texts.filter(lambda text: len(text) <= 8) | st.from_regex(grammar.REGION, fullmatch=True))
@example(" us-ca ")
@example("ß")
@example("\u0131t")
@example("\ufeffDE")
@example("\x1cDE\x85")
def test_region_pattern_is_what_normalize_region_accepts(text: str) -> None:
    # The model caps the length (maxLength 8) before either check sees the text.
    if len(text) > 8:
        return
    assert _search(grammar.REGION, text) is _code_accepts_region(text)


@pytest.mark.parametrize("raw", ["ß", "ßa", "\u0131t", "\u017fe"])
def test_letters_that_upper_case_into_ascii_are_not_region_codes(raw: str) -> None:
    with pytest.raises(ValidationFailed):
        normalize_region(raw)


def _code_accepts_purposes(text: str) -> bool:
    named = WithdrawQuery(purposes=text).purpose_list()
    assert named is not None
    try:
        build_registry().require(named)
    except ValidationFailed:
        return False
    return bool(named)


purpose_lists = st.lists(
    st.sampled_from([*grammar.PURPOSE_NAMES, "", " ", "\x1c", "\ufeff", "cookies", "ads\u200b"]),
    max_size=6,
).map(",".join)


@given(texts | purpose_lists | st.from_regex(grammar.PURPOSE_LIST, fullmatch=True))
@example("")
@example(",")
@example(" ads , ,email")
@example("ads,")
@example(",\x85ads")
@example("ads\ufeff")
def test_purpose_list_pattern_is_what_withdrawal_accepts(text: str) -> None:
    assert _search(grammar.PURPOSE_LIST, text) is _code_accepts_purposes(text)


def test_purpose_list_pattern_does_not_backtrack_exponentially() -> None:
    # Every character has one way to match, so a backtracking engine (Python's re, which
    # generators filter with) rejects a long near-miss at once; an ambiguous pattern would not
    # finish this search in the lifetime of the run (the suite's timeout reports it).
    near_miss = "ads" + ", " * 5000 + "!"
    assert re.search(grammar.PURPOSE_LIST, near_miss) is None


def test_documented_purposes_are_the_policys() -> None:
    settings = Settings(_env_file=None, consent_region_ttls=["FR.analytics=13mo"])  # type: ignore[call-arg]
    assert policy_from_settings(settings).registry.names == grammar.PURPOSE_NAMES
