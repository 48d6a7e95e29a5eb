"""Ingest: validate an original (limits before any full decode) and compute its facts."""

from __future__ import annotations

import base64
from dataclasses import dataclass

import pyvips

from core.images.colour import dominant_colour
from core.images.errors import ImageRejected
from core.images.limits import ImageLimits, check_dimensions, check_format, check_size
from native.blurhash import encode as blurhash_encode
from service.images.vips import header, oriented_size, thumbnail, to_srgb8

# BlurHash only carries a few cosine terms; 32 px is plenty and keeps encoding cheap.
_BLURHASH_SIDE = 32


@dataclass(frozen=True, slots=True)
class IngestSettings:
    limits: ImageLimits
    blurhash_x: int = 4
    blurhash_y: int = 3
    preview_width: int = 16
    preview_quality: int = 40


@dataclass(frozen=True, slots=True)
class ImageFactsDraft:
    input_format: str
    width: int
    height: int
    size: int
    blurhash: str
    preview: str
    dominant_color: str


def inspect_image(data: bytes, settings: IngestSettings) -> ImageFactsDraft:
    """Checks bytes, format and dimensions from the header, then decodes only thumbnails.

    Blocking (libvips): run it in a worker thread.
    """
    limits = settings.limits
    check_size(len(data), limits)
    input_format = check_format(data[:64], limits)
    head = header(data)
    width, height = oriented_size(head)
    check_dimensions(width, height, limits)

    small = to_srgb8(thumbnail(data, _BLURHASH_SIDE, _BLURHASH_SIDE))
    try:
        pixels = bytes(small.write_to_memory())
        preview_image = to_srgb8(thumbnail(data, settings.preview_width))
        preview_bytes = preview_image.webpsave_buffer(Q=settings.preview_quality, keep=0)
    except pyvips.Error as exc:
        raise ImageRejected("the image cannot be decoded") from exc
    blurhash = blurhash_encode(
        pixels, small.width, small.height, settings.blurhash_x, settings.blurhash_y
    )
    return ImageFactsDraft(
        input_format=input_format,
        width=width,
        height=height,
        size=len(data),
        blurhash=blurhash,
        preview="data:image/webp;base64," + base64.b64encode(preview_bytes).decode(),
        dominant_color=dominant_colour(pixels, small.width, small.height),
    )
