"""Rendering one variant with libvips: shrink-on-load thumbnail, then encode."""

from __future__ import annotations

from dataclasses import dataclass

import pyvips

from core.images.errors import ImageRejected
from core.images.formats import OutputFormat
from service.images.vips import thumbnail, to_srgb8


@dataclass(frozen=True, slots=True)
class EncodeOptions:
    quality: int
    avif_effort: int = 4
    webp_effort: int = 4


def encode(image: pyvips.Image, fmt: OutputFormat, options: EncodeOptions) -> bytes:
    if fmt is OutputFormat.AVIF:
        data = image.heifsave_buffer(
            Q=options.quality, compression="av1", effort=options.avif_effort, keep=0
        )
    elif fmt is OutputFormat.WEBP:
        data = image.webpsave_buffer(Q=options.quality, effort=options.webp_effort, keep=0)
    else:
        data = image.jpegsave_buffer(
            Q=options.quality, optimize_coding=True, interlace=True, keep=0
        )
    return bytes(data)


def render_variant(data: bytes, width: int, fmt: OutputFormat, options: EncodeOptions) -> bytes:
    """The original scaled to ``width`` (never enlarged) in ``fmt``. Blocking: run in a thread."""
    image = to_srgb8(thumbnail(data, width))
    try:
        return encode(image, fmt, options)
    except pyvips.Error as exc:
        raise ImageRejected("the image cannot be rendered") from exc


def libvips_version() -> str:
    return f"{pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}"
