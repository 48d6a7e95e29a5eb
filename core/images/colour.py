"""Dominant colour of a thumbnail: the mean of the most populated coarse colour bucket."""

from __future__ import annotations

# 4 bits per channel: coarse enough that noise does not split a colour, fine enough to
# separate hues.
_SHIFT = 4


def dominant_colour(rgb: bytes, width: int, height: int) -> str:
    """``#rrggbb`` of packed 8-bit RGB pixels."""
    if width < 1 or height < 1 or len(rgb) != width * height * 3:
        raise ValueError("pixel buffer does not match the dimensions")
    counts: dict[int, list[int]] = {}
    for p in range(0, len(rgb), 3):
        r, g, b = rgb[p], rgb[p + 1], rgb[p + 2]
        key = ((r >> _SHIFT) << 8) | ((g >> _SHIFT) << 4) | (b >> _SHIFT)
        acc = counts.get(key)
        if acc is None:
            counts[key] = [1, r, g, b]
        else:
            acc[0] += 1
            acc[1] += r
            acc[2] += g
            acc[3] += b
    # Ties go to the lowest bucket so the answer does not depend on pixel order.
    n, r_sum, g_sum, b_sum = max(counts.items(), key=lambda kv: (kv[1][0], -kv[0]))[1]
    r, g, b = ((s + n // 2) // n for s in (r_sum, g_sum, b_sum))
    return f"#{r:02x}{g:02x}{b:02x}"
