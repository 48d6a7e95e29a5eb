"""The configured ladder of variant widths, and what it means for one original (never upscale)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class WidthLadder:
    widths: tuple[int, ...]

    @classmethod
    def of(cls, widths: Iterable[int]) -> WidthLadder:
        ordered = tuple(sorted(set(widths)))
        if not ordered or ordered[0] < 1:
            raise ValueError("a width ladder needs at least one positive width")
        return cls(ordered)

    def __contains__(self, width: object) -> bool:
        return width in self.widths

    def rendered_width(self, requested: int, original_width: int) -> int:
        """The width actually produced for a ladder rung: capped at the original's width."""
        return min(requested, original_width)

    def rungs_for(self, original_width: int) -> list[int]:
        """The rungs worth offering for this original: every rung below its width, plus the first
        rung at or above it (rendered at the original width), so the srcset ends at full size."""
        below = [w for w in self.widths if w < original_width]
        at_or_above = [w for w in self.widths if w >= original_width]
        return below + at_or_above[:1]

    def small_rung(self, target: int, original_width: int) -> int:
        """The rung for the small progressive stage: the largest rung not above ``target``
        (or the smallest rung), among those offered for this original."""
        rungs = self.rungs_for(original_width)
        fitting = [w for w in rungs if w <= target]
        return fitting[-1] if fitting else rungs[0]


def srcset_entries(ladder: WidthLadder, original_width: int) -> Sequence[tuple[int, int]]:
    """(rung, rendered width) pairs for a srcset, rendered widths strictly increasing."""
    return [
        (rung, ladder.rendered_width(rung, original_width))
        for rung in ladder.rungs_for(original_width)
    ]
