"""The progressive images' part of the settings (``KERVAN_IMAGES_*``), composed into
``service.settings.Settings``.

A leaf module (pydantic, the standard library, ``core`` and ``service.settings_types`` only), so
it never causes an import cycle; read the values through the one ``Settings`` object.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, field_validator

from service.settings_types import CommaList


class ImagesSettings(BaseModel):
    images_dir: Path | None = None  # originals, variants and tiles; None = <data_dir>/images
    images_url_secret: str = ""  # HMAC key of variant URLs; empty = derived from cookie_secret
    images_widths: CommaList[int] = [320, 480, 640, 960, 1280, 1920, 2560]
    images_max_bytes: int = Field(default=25 * 1024 * 1024, ge=1024)
    images_max_pixels: int = Field(default=60_000_000, ge=1)  # decompression-bomb guard
    images_max_side: int = Field(default=20_000, ge=1)
    images_input_formats: CommaList[str] = ["jpeg", "png", "webp", "avif", "heif", "tiff"]
    images_source_hosts: CommaList[str] = []  # exact host names URL ingest may fetch from
    images_fetch_timeout_seconds: float = Field(default=15.0, gt=0, le=300)
    images_fetch_max_redirects: int = Field(default=3, ge=0, le=10)
    images_small_width: int = Field(default=640, ge=16)  # the "small AVIF" stage
    images_small_quality: int = Field(default=40, ge=1, le=100)
    images_avif_quality: int = Field(default=55, ge=1, le=100)  # full stage
    images_webp_quality: int = Field(default=75, ge=1, le=100)
    images_jpeg_quality: int = Field(default=80, ge=1, le=100)
    # 2 answers a first request for a 640 px AVIF in ~0.25 s; libvips' default 4 takes ~0.8 s for
    # ~20% smaller files (bench/bench_images.py). Variants render once, on first request.
    images_avif_effort: int = Field(default=2, ge=0, le=9)
    images_render_concurrency: int = Field(default=2, ge=1, le=64)
    images_blurhash_x: int = Field(default=4, ge=1, le=9)  # BlurHash components across
    images_blurhash_y: int = Field(default=3, ge=1, le=9)  # and down
    images_preview_width: int = Field(default=16, ge=4, le=64)
    images_tile_min_pixels: int = Field(default=4_000_000, ge=1)  # IIIF tiles from this size
    images_tile_size: int = Field(default=512, ge=64, le=4096)
    images_tile_quality: int = Field(default=80, ge=1, le=100)
    images_cache_max_bytes: int = Field(default=2 * 1024**3, ge=0)  # 0 = no disk budget
    images_cache_sweep_seconds: float = Field(default=300.0, ge=1, le=86_400)

    @field_validator("images_widths")
    @classmethod
    def _images_ladder(cls, value: list[int]) -> list[int]:
        if not value or any(w < 16 or w > 16_384 for w in value):
            raise ValueError("needs at least one width, each within 16..16384")
        return sorted(set(value))

    @field_validator("images_url_secret")
    @classmethod
    def _images_url_secret(cls, value: str) -> str:
        if value and len(value.encode()) < 32:
            raise ValueError("must be empty (derived from cookie_secret) or at least 32 bytes")
        return value

    @field_validator("images_input_formats")
    @classmethod
    def _images_formats(cls, value: list[str]) -> list[str]:
        from core.images.formats import INPUT_FORMATS

        unknown = sorted(set(value) - INPUT_FORMATS)
        if unknown:
            raise ValueError(f"unknown formats {unknown}; known: {sorted(INPUT_FORMATS)}")
        return value
