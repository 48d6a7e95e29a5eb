"""Small pyvips helpers shared by ingest, variant rendering and tiles."""

from __future__ import annotations

from typing import Any

import pyvips

from core.images.errors import ImageRejected

# Loader options for untrusted input: refuse truncated or corrupt files instead of padding them.
STRICT_LOAD = "fail_on=error"
# EXIF orientations 5-8 swap width and height once applied.
_TRANSPOSING_ORIENTATIONS = frozenset({5, 6, 7, 8})


def header(data: bytes) -> Any:
    """A lazily loaded image: only the header is parsed, no pixels are decoded."""
    try:
        return pyvips.Image.new_from_buffer(data, "", access="sequential")
    except pyvips.Error as exc:
        raise ImageRejected("the image header cannot be read") from exc


def oriented_size(image: Any) -> tuple[int, int]:
    width, height = int(image.width), int(image.height)
    orientation = image.get("orientation") if image.get_typeof("orientation") else 1
    if orientation in _TRANSPOSING_ORIENTATIONS:
        return height, width
    return width, height


def to_srgb8(image: Any) -> Any:
    """Three 8-bit sRGB bands: alpha flattened onto white, grey expanded, extra bands dropped."""
    if image.interpretation not in ("srgb", "b-w"):
        image = image.colourspace("srgb")
    if image.hasalpha():
        image = image.flatten(background=[255] * (image.bands - 1))
    if image.bands == 1:
        image = image.bandjoin([image, image])
    elif image.bands > 3:
        image = image.extract_band(0, n=3)
    if image.format != "uchar":
        image = image.cast("uchar")
    return image


def thumbnail(data: bytes, width: int, height: int | None = None) -> Any:
    """Shrink-on-load thumbnail (EXIF orientation applied, never enlarged)."""
    try:
        return pyvips.Image.thumbnail_buffer(
            data, width, height=height or 10_000_000, size="down", option_string=STRICT_LOAD
        )
    except pyvips.Error as exc:
        raise ImageRejected("the image cannot be decoded") from exc
