"""Choosing the output format for ``auto`` from the request's ``Accept`` header."""

from __future__ import annotations

from core.images.formats import PREFERENCE, OutputFormat


def _accepted(accept: str) -> dict[str, float]:
    weights: dict[str, float] = {}
    for item in accept.split(","):
        media, _, params = item.strip().partition(";")
        media = media.strip().lower()
        if not media:
            continue
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    q = max(0.0, min(1.0, float(value)))
                except ValueError:
                    q = 0.0
        weights[media] = max(q, weights.get(media, 0.0))
    return weights


def negotiate(accept: str | None) -> OutputFormat:
    """The best format the client accepts, preferring AVIF, then WebP, then JPEG.

    AVIF and WebP are only chosen when named explicitly (browsers that decode them say so);
    wildcards alone get JPEG, which every client decodes.
    """
    weights = _accepted(accept or "")
    wildcard = max(weights.get("image/*", 0.0), weights.get("*/*", 0.0))
    best: tuple[float, int, OutputFormat] | None = None
    for rank, fmt in enumerate(PREFERENCE):
        explicit = weights.get(fmt.media_type)
        if explicit is None and fmt is OutputFormat.JPEG:
            explicit = weights.get("image/jpg", wildcard if accept else 1.0)
        if not explicit:
            continue
        candidate = (explicit, -rank, fmt)
        if best is None or candidate[:2] > best[:2]:
            best = candidate
    return best[2] if best else OutputFormat.JPEG
