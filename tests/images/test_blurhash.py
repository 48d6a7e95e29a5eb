"""The compiled BlurHash encoder against the plain-Python reference and both PyPI encoders."""

from __future__ import annotations

import random

import blurhash as c_blurhash  # blurhash-python (C, via cffi) owns the package's __init__
import pytest
from blurhash.blurhash import blurhash_encode as pypi_pure_encode  # pure-Python `blurhash`
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from native.blurhash import encode
from tests.reference import blurhash_ref


def _random_pixels(seed: int, width: int, height: int) -> bytes:
    rng = random.Random(seed)
    return bytes(rng.randrange(256) for _ in range(width * height * 3))


def _gradient(width: int, height: int, phase: int) -> bytes:
    out = bytearray()
    for y in range(height):
        for x in range(width):
            out += bytes(((x * 255) // width, (y * 255) // height, (x * y + phase) % 256))
    return bytes(out)


def _flat(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    return bytes(rgb) * (width * height)


SAMPLES: list[tuple[str, int, int, bytes]] = [
    ("gradient-32x24", 32, 24, _gradient(32, 24, 7)),
    ("gradient-64x48", 64, 48, _gradient(64, 48, 0)),
    ("flat-grey-16x16", 16, 16, _flat(16, 16, (128, 128, 128))),
    ("flat-black-8x5", 8, 5, _flat(8, 5, (0, 0, 0))),
    ("flat-white-5x8", 5, 8, _flat(5, 8, (255, 255, 255))),
    ("noise-seed1-31x17", 31, 17, _random_pixels(1, 31, 17)),
    ("noise-seed2-1x40", 1, 40, _random_pixels(2, 1, 40)),
    ("noise-seed3-40x1", 40, 1, _random_pixels(3, 40, 1)),
]


def _rows(rgb: bytes, width: int, height: int) -> list[list[list[int]]]:
    return [
        [list(rgb[(y * width + x) * 3 : (y * width + x) * 3 + 3]) for x in range(width)]
        for y in range(height)
    ]


@pytest.mark.parametrize(("name", "width", "height", "rgb"), SAMPLES, ids=[s[0] for s in SAMPLES])
@pytest.mark.parametrize(("xc", "yc"), [(4, 3), (1, 1), (9, 9), (3, 7)])
def test_kernel_matches_reference_and_pypi_encoders(
    name: str, width: int, height: int, rgb: bytes, xc: int, yc: int
) -> None:
    expected = blurhash_ref.encode(rgb, width, height, xc, yc)
    assert len(expected) == 4 + 2 * xc * yc
    assert encode(rgb, width, height, xc, yc) == expected
    assert pypi_pure_encode(_rows(rgb, width, height), xc, yc) == expected
    assert c_blurhash.encode(Image.frombytes("RGB", (width, height), rgb), xc, yc) == expected


def test_flat_image_encodes_its_colour_as_dc() -> None:
    # The DC term is the mean colour, so a flat image round-trips its colour exactly.
    value = encode(_flat(6, 4, (255, 16, 200)), 6, 4, 4, 3)
    dc = 0
    for char in value[2:6]:
        dc = dc * 83 + blurhash_ref.ALPHABET.index(char)
    assert dc == (255 << 16) | (16 << 8) | 200


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    width=st.integers(1, 12),
    height=st.integers(1, 12),
    xc=st.integers(1, 9),
    yc=st.integers(1, 9),
)
def test_kernel_equals_reference_on_random_pixels(
    seed: int, width: int, height: int, xc: int, yc: int
) -> None:
    rgb = _random_pixels(seed, width, height)
    assert encode(rgb, width, height, xc, yc) == blurhash_ref.encode(rgb, width, height, xc, yc)


def test_accepts_any_byte_buffer() -> None:
    rgb = _gradient(10, 6, 3)
    expected = encode(rgb, 10, 6)
    assert encode(bytearray(rgb), 10, 6) == expected
    assert encode(memoryview(rgb), 10, 6) == expected


@pytest.mark.parametrize(
    ("width", "height", "size", "xc", "yc", "message"),
    [
        (4, 4, 48, 0, 3, "x_components"),
        (4, 4, 48, 4, 10, "y_components"),
        (0, 4, 0, 4, 3, "dimensions"),
        (4, 4, 47, 4, 3, "expected 48"),
        (2048, 1024, 3, 4, 3, "exceeds"),
    ],
)
def test_wrapper_rejects_bad_input(
    width: int, height: int, size: int, xc: int, yc: int, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        encode(bytes(size), width, height, xc, yc)
