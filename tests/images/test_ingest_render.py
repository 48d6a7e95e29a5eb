"""Ingest and variant rendering with libvips, checked by an independent decoder (Pillow)."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image, ImageStat

from core.images.errors import ImageRejected, ImageTooLarge, UnsupportedImageFormat
from core.images.formats import OutputFormat
from core.images.limits import ImageLimits
from native.blurhash import encode as blurhash_encode
from service.images.ingest import IngestSettings, inspect_image
from service.images.render import EncodeOptions, render_variant
from service.images.vips import thumbnail, to_srgb8
from tests.images import samples
from tests.reference import blurhash_ref

LIMITS = ImageLimits(
    max_bytes=5_000_000,
    max_pixels=20_000_000,
    max_side=20_000,
    allowed_formats=frozenset({"jpeg", "png", "webp", "avif"}),
)
SETTINGS = IngestSettings(limits=LIMITS)


def _decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def _not_blank(image: Image.Image) -> None:
    stat = ImageStat.Stat(image.convert("RGB"))
    assert max(stat.stddev) > 5.0, "the decoded image is (nearly) a flat colour"


def test_ingest_computes_facts_matching_the_reference() -> None:
    data = samples.jpeg(800, 600, seed=3)
    facts = inspect_image(data, SETTINGS)
    assert (facts.input_format, facts.width, facts.height) == ("jpeg", 800, 600)
    assert facts.size == len(data)
    # The stored blurhash is the reference algorithm on the same 32 px thumbnail.
    small = to_srgb8(thumbnail(data, 32, 32))
    pixels = bytes(small.write_to_memory())
    assert facts.blurhash == blurhash_ref.encode(pixels, small.width, small.height, 4, 3)
    assert facts.blurhash == blurhash_encode(pixels, small.width, small.height)
    assert facts.preview.startswith("data:image/webp;base64,")
    preview_bytes = base64.b64decode(facts.preview.split(",", 1)[1])
    assert len(facts.preview) < 1000
    preview = _decode(preview_bytes)
    assert (preview.format, preview.width) == ("WEBP", 16)
    assert facts.dominant_color.startswith("#") and len(facts.dominant_color) == 7


def test_ingest_handles_alpha_png() -> None:
    facts = inspect_image(samples.png(300, 200, alpha=True), SETTINGS)
    assert (facts.input_format, facts.width, facts.height) == ("png", 300, 200)
    assert len(facts.blurhash) == 4 + 2 * 4 * 3


def test_decompression_bomb_refused_from_header() -> None:
    bomb = samples.png_bomb(30_000, 30_000)
    assert len(bomb) < 100_000
    with pytest.raises(ImageTooLarge) as info:
        inspect_image(bomb, SETTINGS)
    assert info.value.details["width"] == 30_000


def test_too_many_bytes_refused() -> None:
    limits = ImageLimits(1000, LIMITS.max_pixels, LIMITS.max_side, LIMITS.allowed_formats)
    with pytest.raises(ImageTooLarge):
        inspect_image(samples.jpeg(200, 200), IngestSettings(limits=limits))


def test_format_is_detected_from_content_not_name() -> None:
    with pytest.raises(UnsupportedImageFormat):
        inspect_image(b"<svg xmlns='http://www.w3.org/2000/svg'/>", SETTINGS)
    gif = bytes(samples.textured(20, 20).gifsave_buffer())
    with pytest.raises(UnsupportedImageFormat):
        inspect_image(gif, SETTINGS)


def test_truncated_image_refused() -> None:
    data = samples.jpeg(400, 300)
    with pytest.raises(ImageRejected):
        inspect_image(data[: len(data) // 2], SETTINGS)


@pytest.mark.parametrize(
    ("fmt", "pil_format"),
    [(OutputFormat.AVIF, "AVIF"), (OutputFormat.WEBP, "WEBP"), (OutputFormat.JPEG, "JPEG")],
)
@pytest.mark.parametrize("width", [320, 640])
def test_rendered_variant_decodes_independently(
    fmt: OutputFormat, pil_format: str, width: int
) -> None:
    data = render_variant(samples.jpeg(1200, 900, seed=1), width, fmt, EncodeOptions(quality=50))
    image = _decode(data)
    assert image.format == pil_format
    assert image.size == (width, width * 3 // 4)
    _not_blank(image)


def test_variant_is_never_upscaled() -> None:
    data = render_variant(samples.png(300, 100), 1280, OutputFormat.WEBP, EncodeOptions(60))
    assert _decode(data).size == (300, 100)


def test_alpha_is_flattened_for_jpeg() -> None:
    data = render_variant(
        samples.png(200, 100, alpha=True), 320, OutputFormat.JPEG, EncodeOptions(80)
    )
    image = _decode(data)
    assert (image.mode, image.size) == ("RGB", (200, 100))


def test_exif_orientation_is_applied_to_facts_and_variants() -> None:
    data = samples.rotated_jpeg(400, 200, orientation=6)
    facts = inspect_image(data, SETTINGS)
    assert (facts.width, facts.height) == (200, 400)
    variant = _decode(render_variant(data, 100, OutputFormat.JPEG, EncodeOptions(80)))
    assert variant.size == (100, 200)
