"""The images feature assembled from settings (stores, fetcher, signer, caches, repository) and
the operations its routes call: ingest, manifests, signed variants and IIIF level 0."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyvips
from sqlalchemy import select

from core.errors import KervanError, NotFound
from core.images.formats import OutputFormat
from core.images.ids import is_image_id, new_image_id
from core.images.ladder import WidthLadder
from core.images.limits import ImageLimits
from core.images.manifest import SMALL_STAGE, ImageFacts, build_manifest
from core.images.signing import UrlSigner
from core.images.ssrf import SourcePolicy
from core.images.variant_request import VariantRequest, parse_variant_request
from service.audit import record_audit
from service.db import Database
from service.db.tables.images import images
from service.db.types import utcnow
from service.images.cache_budget import CacheJanitor
from service.images.fetcher import FetchLimits, SafeFetcher
from service.images.ingest import ImageFactsDraft, IngestSettings, inspect_image
from service.images.metrics import IMAGE_INGESTS
from service.images.render import EncodeOptions
from service.images.storage import OriginalStore
from service.images.stores import original_store
from service.images.tiles import TileStore
from service.images.variants import VariantCache, VariantKey
from service.overload.monitor import OverloadMonitor
from service.settings import Settings


@dataclass(frozen=True, slots=True)
class StoredImage:
    facts: ImageFacts
    content_key: str
    input_format: str
    bytes: int
    source_url: str | None


@dataclass(frozen=True, slots=True)
class IngestSource:
    """What an admin hands in: the file itself, or a URL on an allowed host to fetch it from."""

    alt: str
    data: bytes = b""
    url: str | None = None


@dataclass(frozen=True, slots=True)
class ResolvedVariant:
    key: VariantKey
    request: VariantRequest


def url_key(settings: Settings) -> bytes:
    if settings.images_url_secret:
        return settings.images_url_secret.encode()
    # A key of its own, derived under a separate label, so URL MACs never equal cookie MACs.
    return hmac.new(
        settings.cookie_secret.encode(), b"kervan/images/url-signing", hashlib.sha256
    ).digest()


class ImagesFacility:
    def __init__(
        self, settings: Settings, db: Database, overload: OverloadMonitor | None = None
    ) -> None:
        root = settings.images_dir or (settings.data_dir / "images")
        self.overload = overload
        self.settings = settings
        self.db = db
        self.root = Path(root)
        self.ladder = WidthLadder.of(settings.images_widths)
        self.signer = UrlSigner(url_key(settings))
        self.limits = ImageLimits(
            max_bytes=settings.images_max_bytes,
            max_pixels=settings.images_max_pixels,
            max_side=settings.images_max_side,
            allowed_formats=frozenset(settings.images_input_formats),
        )
        self.ingest_settings = IngestSettings(
            limits=self.limits,
            blurhash_x=settings.images_blurhash_x,
            blurhash_y=settings.images_blurhash_y,
            preview_width=settings.images_preview_width,
        )
        self.originals: OriginalStore = original_store(settings, db, self.root)
        self.variants = VariantCache(
            self.root / "variants", max_concurrent_renders=settings.images_render_concurrency
        )
        self.tiles = TileStore(
            self.root / "tiles",
            tile_size=settings.images_tile_size,
            quality=settings.images_tile_quality,
        )
        self.janitor: CacheJanitor | None = None
        if settings.images_cache_max_bytes:
            self.janitor = CacheJanitor(
                self.root / "variants",
                self.root / "tiles",
                budget=settings.images_cache_max_bytes,
                interval=settings.images_cache_sweep_seconds,
            )
        self.fetcher = SafeFetcher(
            SourcePolicy.of(settings.images_source_hosts),
            FetchLimits(
                max_bytes=settings.images_max_bytes,
                timeout_seconds=settings.images_fetch_timeout_seconds,
                max_redirects=settings.images_fetch_max_redirects,
            ),
        )
        # Ingest decodes thumbnails of untrusted files: bound it like variant renders.
        self._ingest_slots = asyncio.Semaphore(settings.images_render_concurrency)

    @staticmethod
    def harden_libvips() -> None:
        # Only the loaders for formats we accept should ever see untrusted bytes.
        pyvips.block_untrusted_set(True)
        # Variants are cached on disk; libvips' operation cache would only pin originals
        # (up to images_max_bytes each) in memory.
        pyvips.cache_set_max(0)

    def encode_options(self, fmt: OutputFormat, stage: str) -> EncodeOptions:
        s = self.settings
        if stage == SMALL_STAGE:
            quality = s.images_small_quality
        else:
            quality = {
                OutputFormat.AVIF: s.images_avif_quality,
                OutputFormat.WEBP: s.images_webp_quality,
                OutputFormat.JPEG: s.images_jpeg_quality,
            }[fmt]
        return EncodeOptions(quality=quality, avif_effort=s.images_avif_effort)

    def variant_key(
        self, stored: StoredImage, width: int, fmt: OutputFormat, stage: str
    ) -> VariantKey:
        rendered = self.ladder.rendered_width(width, stored.facts.width)
        return VariantKey(stored.content_key, rendered, fmt, self.encode_options(fmt, stage))

    def tiles_available(self, stored: StoredImage) -> bool:
        return stored.facts.width * stored.facts.height >= self.settings.images_tile_min_pixels

    async def inspect(self, data: bytes) -> ImageFactsDraft:
        async with self._ingest_slots:
            try:
                return await asyncio.to_thread(inspect_image, data, self.ingest_settings)
            except KervanError as exc:
                IMAGE_INGESTS.labels(exc.code).inc()
                raise

    async def ingest(
        self, data: bytes, alt: str, *, actor: str, source_url: str | None = None
    ) -> StoredImage:
        draft = await self.inspect(data)
        content_key = await self.originals.put(data)
        image_id = new_image_id()
        row: dict[str, Any] = {
            "id": image_id,
            "content_key": content_key,
            "input_format": draft.input_format,
            "width": draft.width,
            "height": draft.height,
            "bytes": draft.size,
            "alt": alt,
            "blurhash": draft.blurhash,
            "preview": draft.preview,
            "dominant_color": draft.dominant_color,
            "source_url": source_url,
            "created_at": utcnow(),
        }
        async with self.db.begin() as conn:
            await conn.execute(images.insert().values(**row))
            await record_audit(
                conn,
                actor=actor,
                action="image.ingest",
                subject=f"image:{image_id}",
                details={"content_key": content_key, "source_url": source_url},
            )
        IMAGE_INGESTS.labels("stored").inc()
        return _stored(row)

    async def get(self, image_id: str) -> StoredImage:
        # Ids are minted lower-case hex. Checking the form first keeps lookups byte-exact on
        # every database: MariaDB's default collation would match "ABC..." to "abc...".
        if not is_image_id(image_id):
            raise NotFound("no such image", details={"id": image_id})
        async with self.db.connect() as conn:
            row = (
                (await conn.execute(select(images).where(images.c.id == image_id)))
                .mappings()
                .first()
            )
        if row is None:
            raise NotFound("no such image", details={"id": image_id})
        return _stored(dict(row))

    async def ingest_from(self, source: IngestSource, *, actor: str) -> StoredImage:
        if source.url is None:
            return await self.ingest(source.data, source.alt, actor=actor)
        data = await self.fetcher.fetch(source.url)
        return await self.ingest(data, source.alt, actor=actor, source_url=source.url)

    def manifest(self, stored: StoredImage, *, relative: bool = False) -> dict[str, Any]:
        """Everything a progressive image component needs; URLs on the public origin, or
        relative ones for a page served by this origin."""
        base_url = "" if relative else self.settings.public_origin
        manifest = build_manifest(
            stored.facts,
            ladder=self.ladder,
            signer=self.signer,
            small_width=self.settings.images_small_width,
            base_url=base_url,
        )
        manifest["tiles"] = (
            {"iiif": f"{base_url}/iiif/{stored.facts.image_id}/info.json"}
            if self.tiles_available(stored)
            else None
        )
        return manifest

    async def resolve_variant(
        self,
        url_path: str,
        params: Mapping[str, str],
        image_id: str,
        name: str,
        accept: str | None,
    ) -> ResolvedVariant:
        """The variant a signed URL asks for. Problems are reported in this order: signature
        (403), name, stage, width and format (422), then the image (404)."""
        self.signer.verify(url_path, params)
        asked = parse_variant_request(name, params.get("stage"), accept, self.ladder)
        stored = await self.get(image_id)
        return ResolvedVariant(self.variant_key(stored, asked.width, asked.fmt, asked.stage), asked)

    async def variant(self, key: VariantKey) -> bytes:
        return await self.variants.get(key, self.originals.get, before_render=self._may_render)

    def _may_render(self) -> None:
        if self.overload is not None and self.overload.shedding:
            raise self.overload.refuse("image_render")

    async def _tiled(self, image_id: str) -> StoredImage:
        stored = await self.get(image_id)
        if not self.tiles_available(stored):
            raise NotFound(
                "this image is too small for tiles", details={"id": stored.facts.image_id}
            )
        return stored

    async def iiif_info(self, image_id: str) -> dict[str, Any]:
        """The IIIF Image API 3.0 level 0 ``info.json`` (the pyramid is built on first use)."""
        stored = await self._tiled(image_id)
        service_id = f"{self.settings.public_origin}/iiif/{image_id}"
        return await self.tiles.info(stored.content_key, service_id, self.originals.get)

    async def iiif_tile(
        self, image_id: str, region: str, size: str, rotation: str, quality_format: str
    ) -> bytes:
        stored = await self._tiled(image_id)
        return await self.tiles.tile(
            stored.content_key, region, size, rotation, quality_format, self.originals.get
        )


def _stored(row: dict[str, Any]) -> StoredImage:
    return StoredImage(
        facts=ImageFacts(
            image_id=row["id"],
            width=row["width"],
            height=row["height"],
            alt=row["alt"],
            blurhash=row["blurhash"],
            preview=row["preview"],
            dominant_color=row["dominant_color"],
        ),
        content_key=row["content_key"],
        input_format=row["input_format"],
        bytes=row["bytes"],
        source_url=row["source_url"],
    )
