"""The manifest a progressive image component needs, built from a stored image's facts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.images.formats import PREFERENCE, OutputFormat
from core.images.ladder import WidthLadder, srcset_entries
from core.images.signing import UrlSigner

SMALL_STAGE = "small"
FULL_STAGE = "full"
STAGES = (SMALL_STAGE, FULL_STAGE)


@dataclass(frozen=True, slots=True)
class ImageFacts:
    image_id: str
    width: int
    height: int
    alt: str
    blurhash: str
    preview: str
    dominant_color: str


def variant_path(image_id: str, width: int, fmt: OutputFormat | str) -> str:
    return f"/img/{image_id}/{width}.{fmt}"


def variant_url(
    signer: UrlSigner, image_id: str, width: int, fmt: OutputFormat | str, stage: str
) -> str:
    return signer.sign(variant_path(image_id, width, fmt), {"stage": stage})


def build_manifest(
    facts: ImageFacts,
    *,
    ladder: WidthLadder,
    signer: UrlSigner,
    small_width: int,
    small_format: OutputFormat = OutputFormat.AVIF,
    base_url: str = "",
) -> dict[str, Any]:
    entries = srcset_entries(ladder, facts.width)
    srcset: dict[str, list[dict[str, Any]]] = {}
    for fmt in PREFERENCE:
        srcset[fmt.value] = [
            {
                "src": base_url + variant_url(signer, facts.image_id, rung, fmt, FULL_STAGE),
                "width": rendered,
            }
            for rung, rendered in entries
        ]
    small_rung = ladder.small_rung(small_width, facts.width)
    small_rendered = ladder.rendered_width(small_rung, facts.width)
    largest = entries[-1][1]
    sizes = f"(max-width: {largest}px) 100vw, {largest}px"
    avif_srcset = ", ".join(f"{e['src']} {e['width']}w" for e in srcset[OutputFormat.AVIF])
    return {
        "id": facts.image_id,
        "width": facts.width,
        "height": facts.height,
        "alt": facts.alt,
        "blurhash": facts.blurhash,
        "preview": facts.preview,
        "dominant_color": facts.dominant_color,
        "small": {
            "src": base_url
            + variant_url(signer, facts.image_id, small_rung, small_format, SMALL_STAGE),
            "width": small_rendered,
            "type": small_format.media_type,
        },
        "srcset": srcset,
        "srcset_strings": {
            fmt: ", ".join(f"{e['src']} {e['width']}w" for e in items)
            for fmt, items in srcset.items()
        },
        "sizes": sizes,
        # For the LCP image: <link rel="preload" as="image" fetchpriority="high" ...>.
        "preload": {
            "rel": "preload",
            "as": "image",
            "type": OutputFormat.AVIF.media_type,
            "imagesrcset": avif_srcset,
            "imagesizes": sizes,
            "fetchpriority": "high",
        },
    }
