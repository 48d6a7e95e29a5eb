"""Output formats a variant can be rendered in, and which input formats ingest accepts."""

from __future__ import annotations

from enum import StrEnum


class OutputFormat(StrEnum):
    AVIF = "avif"
    WEBP = "webp"
    JPEG = "jpeg"

    @property
    def media_type(self) -> str:
        return f"image/{self.value}"


# Preference when the client accepts several: smallest files first.
PREFERENCE: tuple[OutputFormat, ...] = (OutputFormat.AVIF, OutputFormat.WEBP, OutputFormat.JPEG)

INPUT_FORMATS: frozenset[str] = frozenset({"jpeg", "png", "webp", "gif", "avif", "heif", "tiff"})


def detect_input_format(head: bytes) -> str | None:
    """The container format named by the file's magic bytes (never by its name), or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if head[4:8] == b"ftyp":
        brands = {head[i : i + 4] for i in range(8, min(len(head), 64) - 3, 4)}
        if brands & {b"avif", b"avis"}:
            return "avif"
        if brands & {b"heic", b"heix", b"mif1", b"msf1", b"hevc"}:
            return "heif"
    return None
