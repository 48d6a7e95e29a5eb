"""What a variant URL asks for: the documented name form and the order problems are reported."""

from __future__ import annotations

import re

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from core.errors import ValidationFailed
from core.images.errors import BadFormat, BadStage, BadVariantName, BadWidth
from core.images.formats import OutputFormat
from core.images.ids import IMAGE_ID_PATTERN, is_image_id, new_image_id
from core.images.ladder import WidthLadder
from core.images.signing import SIGNATURE_PATTERN, UrlSigner
from core.images.variant_request import VARIANT_NAME_PATTERN, parse_variant_request

LADDER = WidthLadder.of([320, 640])


def test_a_name_asks_for_width_format_and_stage() -> None:
    got = parse_variant_request("640.webp", "small", None, LADDER)
    assert (got.width, got.fmt, got.stage, got.negotiated) == (
        640,
        OutputFormat.WEBP,
        "small",
        False,
    )
    auto = parse_variant_request("0320.auto", None, "image/avif,*/*", LADDER)
    assert (auto.width, auto.fmt, auto.stage, auto.negotiated) == (
        320,
        OutputFormat.AVIF,
        "full",
        True,
    )


@pytest.mark.parametrize(
    ("name", "stage", "error", "code"),
    [
        ("big.jpeg", "huge", BadVariantName, "bad_variant"),  # the name first
        ("1234567.jpeg", None, BadVariantName, "bad_variant"),
        ("320", None, BadVariantName, "bad_variant"),
        ("³20.jpeg", None, BadVariantName, "bad_variant"),  # ASCII digits only
        ("١٢٠.jpeg", None, BadVariantName, "bad_variant"),
        ("333.gif", "huge", BadStage, "bad_stage"),  # then the stage
        ("333.gif", "", BadStage, "bad_stage"),
        ("333.gif", None, BadWidth, "bad_width"),  # then the width
        ("320.gif", None, BadFormat, "bad_format"),  # then the format
        ("320.", None, BadFormat, "bad_format"),
        ("320.JPEG", None, BadFormat, "bad_format"),
        ("320.jpeg.x", None, BadFormat, "bad_format"),
    ],
)
def test_problems_are_reported_in_order(
    name: str, stage: str | None, error: type[ValidationFailed], code: str
) -> None:
    with pytest.raises(error) as caught:
        parse_variant_request(name, stage, None, LADDER)
    assert caught.value.code == code


def test_bad_width_names_the_ladder() -> None:
    with pytest.raises(BadWidth) as caught:
        parse_variant_request("333.jpeg", None, None, LADDER)
    assert caught.value.details == {"allowed": (320, 640)}


@given(st.from_regex(VARIANT_NAME_PATTERN, fullmatch=True))
def test_every_documented_name_is_served_when_its_width_is_on_the_ladder(name: str) -> None:
    width = int(name.split(".", 1)[0])
    assume(width > 0)  # a ladder's widths are positive
    parse_variant_request(name, None, None, WidthLadder.of([width]))


@given(st.text(alphabet="0123456789.abcdefghijklmnopqrstuvwxyz", max_size=12))
def test_no_name_outside_the_documented_form_is_served(name: str) -> None:
    try:
        parse_variant_request(name, None, None, WidthLadder.of(range(1, 2000)))
    except ValidationFailed:
        return
    assert re.fullmatch(VARIANT_NAME_PATTERN, name)


@given(st.text(alphabet="0123456789abcdefABCDEF\n", min_size=23, max_size=25))
def test_image_ids_are_exactly_the_documented_form(text: str) -> None:
    assert is_image_id(text) == (re.fullmatch(IMAGE_ID_PATTERN, text) is not None)


def test_minted_ids_and_signatures_have_the_documented_form() -> None:
    assert re.fullmatch(IMAGE_ID_PATTERN, new_image_id())
    signature = UrlSigner(b"k" * 32).signature("/img/x/320.jpeg", {"stage": "full"})
    assert re.fullmatch(SIGNATURE_PATTERN, signature)
