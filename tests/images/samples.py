"""Sample images made on the spot (no downloads): textured, so an encoder cannot cheat with flat
colour, and so a blank or wrongly scaled output is detectable."""

from __future__ import annotations

import struct
import zlib
from typing import Any

import pyvips


def textured(width: int, height: int, *, alpha: bool = False, seed: int = 0) -> Any:
    xy = pyvips.Image.xyz(width, height)
    x, y = xy[0], xy[1]
    red = x * (255.0 / max(width - 1, 1))
    green = y * (255.0 / max(height - 1, 1))
    blue = ((x + y + seed) % 97) * (255.0 / 96)
    image = red.bandjoin([green, blue])
    noise = pyvips.Image.gaussnoise(width, height, sigma=12, seed=seed)
    image = (image + noise).cast("uchar")
    image = image.copy(interpretation="srgb")
    if alpha:
        image = image.bandjoin(((x % 2) * 255).cast("uchar"))
    return image


def jpeg(width: int, height: int, *, seed: int = 0, quality: int = 90) -> bytes:
    return bytes(textured(width, height, seed=seed).jpegsave_buffer(Q=quality))


def rotated_jpeg(width: int, height: int, orientation: int) -> bytes:
    """A JPEG stored ``width`` x ``height`` with an EXIF orientation tag, as phones write them."""
    image = textured(width, height).copy()
    image.set_type(pyvips.GValue.gint_type, "orientation", orientation)
    return bytes(image.jpegsave_buffer(Q=85))


def png(width: int, height: int, *, alpha: bool = False, seed: int = 0) -> bytes:
    return bytes(textured(width, height, alpha=alpha, seed=seed).pngsave_buffer(compression=1))


def png_bomb(width: int, height: int) -> bytes:
    """A valid PNG header declaring ``width`` x ``height`` followed by a small compressed body:
    decoding it fully would allocate width*height*3 bytes."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    # A few rows of zeros compress to almost nothing; the header is what matters.
    body = zlib.compress(b"\x00" * (width * 3 + 1) * 4, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
