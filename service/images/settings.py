"""The progressive images' part of the settings (``KERVAN_IMAGES_*``), composed into
``service.settings.Settings``.

A leaf module (pydantic, the standard library, ``core`` and ``service.settings_types`` only), so
it never causes an import cycle; read the values through the one ``Settings`` object.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

from service.settings_types import CommaList

#: Bucket names as S3 and the common S3-compatible stores accept them (legacy AWS names may
#: carry capitals and underscores).
BUCKET_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{1,253}[A-Za-z0-9]$"


class ImagesSettings(BaseModel):
    images_dir: Path | None = Field(
        default=None,
        description="Folder of this process's variant and tile caches, and of the originals "
        "with `file` storage; unset = `<data_dir>/images`.",
    )
    images_storage: Literal["file", "database", "s3"] = Field(
        default="file",
        description="Where image originals live: `file` (the images folder, seen by this host "
        "only), `database` (blobs in the app's database, seen by every process) or `s3` (an "
        "S3-compatible object store). Variants and tiles stay a per-process disk cache.",
    )
    images_s3_endpoint_url: str | None = Field(
        default=None,
        description="S3 API endpoint of a non-AWS store (MinIO, Ceph, R2, ...), "
        "`https://host[:port]`; unset = AWS S3 of the region.",
    )
    images_s3_bucket: str | None = Field(
        default=None,
        pattern=BUCKET_PATTERN,
        description="Bucket of the originals (made by the operator); needed with `s3` storage.",
    )
    images_s3_region: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9-]{1,32}$",
        description="Region of the bucket; needed with `s3` storage unless an endpoint is set "
        "(then `us-east-1` signs requests).",
    )
    images_s3_access_key_id: str | None = Field(
        default=None,
        description="S3 access key id; unset together with the secret = the default AWS "
        "credential chain (environment, web identity, instance role).",
    )
    images_s3_secret_access_key: SecretStr | None = Field(
        default=None,
        description="S3 secret access key (secret); set together with the access key id.",
    )
    images_s3_prefix: str = Field(
        default="",
        max_length=512,
        description="Prepended to every object key, e.g. `kervan/originals/`.",
    )
    images_s3_path_style: bool = Field(
        default=False,
        description="Path-style addressing (`endpoint/bucket/key`), which most self-hosted "
        "stores need; off = virtual-hosted style where the bucket name allows it.",
    )
    images_s3_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="Connect and read timeout of one object store call (3 attempts).",
    )
    images_url_secret: str = Field(
        default="",
        description="HMAC key of variant URLs (>= 32 bytes); empty = derived from cookie_secret.",
    )
    images_widths: CommaList[int] = Field(
        default=[320, 480, 640, 960, 1280, 1920, 2560],
        description="The width ladder variants may be rendered at.",
    )
    images_max_bytes: int = Field(
        default=25 * 1024 * 1024, ge=1024, description="Largest upload or fetched original."
    )
    images_max_pixels: int = Field(  # decompression-bomb guard
        default=60_000_000,
        ge=1,
        description="Largest width x height of an original (decompression-bomb guard).",
    )
    images_max_side: int = Field(
        default=20_000, ge=1, description="Largest width or height of an original."
    )
    images_input_formats: CommaList[str] = Field(
        default=["jpeg", "png", "webp", "avif", "heif", "tiff"],
        description="Accepted original formats, detected from content.",
    )
    images_source_hosts: CommaList[str] = Field(
        default=[], description="Exact host names URL ingest may fetch from."
    )
    images_fetch_timeout_seconds: float = Field(
        default=15.0,
        gt=0,
        le=300,
        description="Total time allowed for fetching an original by URL.",
    )
    images_fetch_max_redirects: int = Field(
        default=3, ge=0, le=10, description="Redirect hops followed (each one SSRF-checked)."
    )
    images_small_width: int = Field(
        default=640, ge=16, description="Width of the small AVIF stage shown first."
    )
    images_small_quality: int = Field(
        default=40, ge=1, le=100, description="Quality of the small AVIF stage."
    )
    images_avif_quality: int = Field(
        default=55, ge=1, le=100, description="AVIF quality of full-stage variants."
    )
    images_webp_quality: int = Field(
        default=75, ge=1, le=100, description="WebP quality of full-stage variants."
    )
    images_jpeg_quality: int = Field(
        default=80, ge=1, le=100, description="JPEG quality of full-stage variants."
    )
    # 2 answers a first request for a 640 px AVIF in ~0.25 s; libvips' default 4 takes ~0.8 s for
    # ~20% smaller files (bench/bench_images.py). Variants render once, on first request.
    images_avif_effort: int = Field(
        default=2,
        ge=0,
        le=9,
        description="AVIF encoder effort (0-9): 2 renders a 640 px variant about 3x faster "
        "than libvips' default 4, for files ~20% larger.",
    )
    images_render_concurrency: int = Field(
        default=2,
        ge=1,
        le=64,
        description="libvips renders running at once (off the event loop).",
    )
    images_blurhash_x: int = Field(default=4, ge=1, le=9, description="BlurHash components across.")
    images_blurhash_y: int = Field(default=3, ge=1, le=9, description="BlurHash components down.")
    images_preview_width: int = Field(
        default=16, ge=4, le=64, description="Width of the tiny inline preview."
    )
    images_tile_min_pixels: int = Field(
        default=4_000_000, ge=1, description="Images of at least this many pixels get IIIF tiles."
    )
    images_tile_size: int = Field(
        default=512, ge=64, le=4096, description="IIIF tile size in pixels."
    )
    images_tile_quality: int = Field(
        default=80, ge=1, le=100, description="JPEG quality of IIIF tiles."
    )
    images_cache_max_bytes: int = Field(
        default=2 * 1024**3,
        ge=0,
        description="Disk budget of rendered variants, tile pyramids and local copies of "
        "stored originals (all made again on demand); above it the least recently used go, "
        "down to 90%. 0 = unbounded.",
    )
    images_cache_sweep_seconds: float = Field(
        default=300.0,
        ge=1,
        le=86_400,
        description="How often the image caches are measured against their budget.",
    )

    @field_validator(
        "images_s3_endpoint_url",
        "images_s3_bucket",
        "images_s3_region",
        "images_s3_access_key_id",
        "images_s3_secret_access_key",
        mode="before",
    )
    @classmethod
    def _images_s3_unset_when_empty(cls, value: Any) -> Any:
        # An empty variable (a ConfigMap entry left blank) means unset, not "the empty name".
        return None if isinstance(value, str) and value.strip() == "" else value

    @field_validator("images_s3_endpoint_url")
    @classmethod
    def _images_s3_endpoint(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL, e.g. https://s3.example.com")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError("must carry no query, fragment or credentials")
        return value.strip().rstrip("/")

    @field_validator("images_s3_prefix")
    @classmethod
    def _images_s3_prefix(cls, value: str) -> str:
        if value.startswith("/") or any(ord(c) < 32 for c in value):
            raise ValueError("must not start with '/' nor hold control characters")
        return value

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

    @model_validator(mode="after")
    def _check_images_s3(self) -> Self:
        if self.images_storage != "s3":
            return self
        problems: list[str] = []
        if self.images_s3_bucket is None:
            problems.append("images_s3_bucket: needed when KERVAN_IMAGES_STORAGE=s3")
        if self.images_s3_endpoint_url is None and self.images_s3_region is None:
            problems.append(
                "images_s3_region: needed when KERVAN_IMAGES_STORAGE=s3 and no "
                "KERVAN_IMAGES_S3_ENDPOINT_URL is set"
            )
        if self.images_s3_access_key_id is not None and self.images_s3_secret_access_key is None:
            problems.append(
                "images_s3_secret_access_key: needed with KERVAN_IMAGES_S3_ACCESS_KEY_ID"
            )
        if self.images_s3_secret_access_key is not None and self.images_s3_access_key_id is None:
            problems.append(
                "images_s3_access_key_id: needed with KERVAN_IMAGES_S3_SECRET_ACCESS_KEY"
            )
        if problems:
            raise ValueError("\n".join(problems))
        return self
