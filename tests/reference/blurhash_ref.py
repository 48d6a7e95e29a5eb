"""Plain-Python reference of the BlurHash encoder: the test oracle of ``native._blurhash``.

It follows the published algorithm (https://github.com/woltapp/blurhash, Algorithm.md) in double
precision with the same order of operations as the pure-Python ``blurhash`` package, so for the
same pixels it yields the same string as that package and as our compiled kernel. It is written
for clarity, not speed: one ``cos`` per pixel and component.
"""

from __future__ import annotations

import math

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~"


def base83(value: int, length: int) -> str:
    if value // 83**length != 0:
        raise ValueError("value does not fit the requested length")
    return "".join(ALPHABET[(value // 83 ** (length - i)) % 83] for i in range(1, length + 1))


def srgb_to_linear(channel: int) -> float:
    v = float(channel) / 255.0
    if v <= 0.04045:
        return v / 12.92
    return math.pow((v + 0.055) / 1.055, 2.4)


def linear_to_srgb(value: float) -> int:
    v = max(0.0, min(1.0, value))
    if v <= 0.0031308:
        return int(v * 12.92 * 255 + 0.5)
    return int((1.055 * math.pow(v, 1 / 2.4) - 0.055) * 255 + 0.5)


def sign_pow(value: float, exponent: float) -> float:
    return math.copysign(math.pow(abs(value), exponent), value)


def encode(rgb: bytes, width: int, height: int, x_components: int, y_components: int) -> str:
    """BlurHash of ``width`` x ``height`` packed 8-bit sRGB pixels (row-major, 3 bytes each)."""
    if not (1 <= x_components <= 9 and 1 <= y_components <= 9):
        raise ValueError("component counts must be within 1..9")
    if len(rgb) != width * height * 3 or width < 1 or height < 1:
        raise ValueError("pixel buffer does not match the dimensions")
    w = float(width)
    h = float(height)
    linear = [srgb_to_linear(b) for b in rgb]

    factors: list[tuple[float, float, float]] = []
    for j in range(y_components):
        for i in range(x_components):
            norm = 1.0 if i == 0 and j == 0 else 2.0
            r = g = b = 0.0
            for y in range(height):
                for x in range(width):
                    basis = (
                        norm
                        * math.cos(math.pi * float(i) * float(x) / w)
                        * math.cos(math.pi * float(j) * float(y) / h)
                    )
                    p = (y * width + x) * 3
                    r += basis * linear[p]
                    g += basis * linear[p + 1]
                    b += basis * linear[p + 2]
            factors.append((r / (w * h), g / (w * h), b / (w * h)))

    dc = factors[0]
    ac = factors[1:]
    max_ac = 0.0
    for r, g, b in ac:
        max_ac = max(max_ac, abs(r), abs(g), abs(b))
    quant_max = int(max(0, min(82, math.floor(max_ac * 166 - 0.5))))
    ac_norm = float(quant_max + 1) / 166.0

    def quant(v: float) -> int:
        return int(max(0.0, min(18.0, math.floor(sign_pow(v / ac_norm, 0.5) * 9.0 + 9.5))))

    out = base83((x_components - 1) + (y_components - 1) * 9, 1)
    out += base83(quant_max, 1)
    out += base83(
        (linear_to_srgb(dc[0]) << 16) + (linear_to_srgb(dc[1]) << 8) + linear_to_srgb(dc[2]), 4
    )
    for r, g, b in ac:
        out += base83(quant(r) * 19 * 19 + quant(g) * 19 + quant(b), 2)
    return out
