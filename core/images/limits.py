"""Ingest limits, checked from the header before any full decode."""

from __future__ import annotations

from dataclasses import dataclass

from core.images.errors import ImageTooLarge, UnsupportedImageFormat
from core.images.formats import detect_input_format


@dataclass(frozen=True, slots=True)
class ImageLimits:
    max_bytes: int
    max_pixels: int
    max_side: int
    allowed_formats: frozenset[str]


def check_format(head: bytes, limits: ImageLimits) -> str:
    """The detected input format; refuses unknown or disallowed content."""
    detected = detect_input_format(head)
    if detected is None:
        raise UnsupportedImageFormat(
            "the content is not a recognised image format",
            details={"allowed": sorted(limits.allowed_formats)},
        )
    if detected not in limits.allowed_formats:
        raise UnsupportedImageFormat(
            f"image format {detected!r} is not accepted",
            details={"format": detected, "allowed": sorted(limits.allowed_formats)},
        )
    return detected


def check_size(size: int, limits: ImageLimits) -> None:
    if size > limits.max_bytes:
        raise ImageTooLarge(
            f"the image has more than {limits.max_bytes} bytes",
            details={"max_bytes": limits.max_bytes},
        )


def check_dimensions(width: int, height: int, limits: ImageLimits) -> None:
    """Refuses decompression bombs from the header's dimensions alone."""
    if width < 1 or height < 1:
        raise ImageTooLarge("the image has no pixels", details={"width": width, "height": height})
    if width * height > limits.max_pixels or max(width, height) > limits.max_side:
        raise ImageTooLarge(
            f"{width}x{height} exceeds the pixel limits",
            details={
                "width": width,
                "height": height,
                "max_pixels": limits.max_pixels,
                "max_side": limits.max_side,
            },
        )
