"""The images settings section: list parsing and validation at start-up."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pydantic import ValidationError

from service.images.facility import url_key
from service.settings import Settings


def test_lists_parse_from_commas_and_the_ladder_is_sorted(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(
        images_widths="960, 320,640,320",
        images_input_formats="jpeg,png",
        images_source_hosts="cdn.example.com, img.example.org",
    )
    assert settings.images_widths == [320, 640, 960]
    assert settings.images_input_formats == ["jpeg", "png"]
    assert settings.images_source_hosts == ["cdn.example.com", "img.example.org"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("images_widths", ""),
        ("images_widths", "320,0"),
        ("images_widths", "320,99999"),
        ("images_input_formats", "jpeg,svg"),
        ("images_blurhash_x", 10),
        ("images_small_quality", 0),
        ("images_render_concurrency", 0),
        ("images_url_secret", "too-short"),
    ],
)
def test_bad_values_are_refused(
    make_settings: Callable[..., Settings], field: str, value: object
) -> None:
    with pytest.raises(ValidationError) as info:
        make_settings(**{field: value})
    assert field in str(info.value)


def test_url_key_is_separate_from_the_cookie_secret(
    make_settings: Callable[..., Settings],
) -> None:
    derived = url_key(make_settings())
    assert derived != make_settings().cookie_secret.encode()
    assert len(derived) == 32
    assert url_key(make_settings(images_url_secret="x" * 40)) == b"x" * 40
