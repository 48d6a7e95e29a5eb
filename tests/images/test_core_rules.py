"""Pure image rules: ladder, signatures, negotiation, SSRF classes, limits, manifest, colour."""

from __future__ import annotations

import ipaddress

import pytest

from core.images.colour import dominant_colour
from core.images.errors import BadSignature, ImageTooLarge, SourceNotAllowed, UnsupportedImageFormat
from core.images.formats import OutputFormat, detect_input_format
from core.images.ladder import WidthLadder, srcset_entries
from core.images.limits import ImageLimits, check_dimensions, check_format, check_size
from core.images.manifest import ImageFacts, build_manifest
from core.images.negotiation import negotiate
from core.images.signing import UrlSigner
from core.images.ssrf import SourcePolicy, address_kind

LADDER = WidthLadder.of([320, 480, 640, 960, 1280, 1920, 2560])
KEY = b"k" * 32


def test_ladder_never_upscales_and_ends_at_full_size() -> None:
    assert LADDER.rungs_for(1000) == [320, 480, 640, 960, 1280]
    assert list(srcset_entries(LADDER, 1000))[-1] == (1280, 1000)
    assert LADDER.rendered_width(1920, 1000) == 1000
    assert LADDER.rendered_width(640, 1000) == 640
    assert LADDER.rungs_for(200) == [320]
    assert LADDER.rungs_for(5000) == list(LADDER.widths)


def test_small_rung_picks_largest_rung_within_target() -> None:
    assert LADDER.small_rung(640, 4000) == 640
    assert LADDER.small_rung(600, 4000) == 480
    assert LADDER.small_rung(640, 500) == 640  # rendered at 500, the original width
    assert LADDER.small_rung(100, 4000) == 320


def test_ladder_rejects_empty_or_non_positive() -> None:
    with pytest.raises(ValueError):
        WidthLadder.of([])
    with pytest.raises(ValueError):
        WidthLadder.of([0, 320])


def test_signed_url_verifies_and_any_tampering_fails() -> None:
    signer = UrlSigner(KEY)
    url = signer.sign("/img/abc/640.avif", {"stage": "small"})
    path, _, query = url.partition("?")
    params = dict(p.split("=", 1) for p in query.split("&"))
    signer.verify(path, params)
    with pytest.raises(BadSignature):
        signer.verify("/img/abc/641.avif", params)
    with pytest.raises(BadSignature):
        signer.verify(path, {**params, "stage": "full"})
    with pytest.raises(BadSignature):
        signer.verify(path, {**params, "extra": "1"})
    with pytest.raises(BadSignature):
        signer.verify(path, {"stage": "small"})
    with pytest.raises(BadSignature):
        UrlSigner(b"x" * 32).verify(path, params)


def test_signer_requires_a_real_key() -> None:
    with pytest.raises(ValueError):
        UrlSigner(b"short")


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("image/avif,image/webp,image/apng,image/*,*/*;q=0.8", OutputFormat.AVIF),
        ("image/webp,*/*", OutputFormat.WEBP),
        ("image/avif;q=0,image/webp", OutputFormat.WEBP),
        ("image/avif;q=0.5,image/webp;q=0.9", OutputFormat.WEBP),
        ("image/*", OutputFormat.JPEG),
        ("*/*", OutputFormat.JPEG),
        ("", OutputFormat.JPEG),
        (None, OutputFormat.JPEG),
        ("image/jpeg;q=0,image/webp;q=0.1", OutputFormat.WEBP),
        ("image/avif;q=abc, image/jpeg", OutputFormat.JPEG),
    ],
)
def test_negotiation(accept: str | None, expected: OutputFormat) -> None:
    assert negotiate(accept) is expected


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("93.184.216.34", "public"),
        ("2606:4700::1111", "public"),
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd12::1", "private"),
        ("169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("100.100.100.200", "metadata"),
        ("169.254.10.10", "link_local"),
        ("fe80::1", "link_local"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("100.64.0.1", "reserved"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "metadata"),
        ("64:ff9b::a00:1", "private"),
        ("2002:7f00:1::", "loopback"),
        ("::ffff:93.184.216.34", "public"),
    ],
)
def test_address_classification(address: str, kind: str) -> None:
    assert address_kind(ipaddress.ip_address(address)) == kind


def test_source_policy_matches_hosts_exactly() -> None:
    policy = SourcePolicy.of(["images.example.com"])
    assert policy.check_url("https://images.example.com/a.jpg") == (
        "https",
        "images.example.com",
        443,
    )
    assert policy.check_url("https://IMAGES.example.com./a.jpg")[1] == "images.example.com"
    for url in [
        "https://images.example.com.evil.test/a.jpg",
        "https://evilimages.example.com/a.jpg",
        "https://example.com/a.jpg",
        "http://images.example.com/a.jpg",
        "file:///etc/passwd",
        "https://user:pw@images.example.com/a.jpg",
        "https://images.example.com:8443/a.jpg",
        "https://[::1]/a.jpg",
        "https://images.example.com:99999/",
    ]:
        with pytest.raises(SourceNotAllowed):
            policy.check_url(url)


@pytest.mark.parametrize(
    ("head", "fmt"),
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "jpeg"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "png"),
        (b"GIF89a....", "gif"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "webp"),
        (b"II*\x00\x08\x00", "tiff"),
        (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1", "avif"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "heif"),
        (b"<svg xmlns=", None),
        (b"%PDF-1.7", None),
        (b"", None),
    ],
)
def test_format_detection_from_content(head: bytes, fmt: str | None) -> None:
    assert detect_input_format(head) == fmt


LIMITS = ImageLimits(
    max_bytes=1000, max_pixels=10_000, max_side=500, allowed_formats=frozenset({"jpeg", "png"})
)


def test_limits() -> None:
    assert check_format(b"\x89PNG\r\n\x1a\n", LIMITS) == "png"
    with pytest.raises(UnsupportedImageFormat):
        check_format(b"GIF89a", LIMITS)
    with pytest.raises(UnsupportedImageFormat):
        check_format(b"hello", LIMITS)
    check_size(1000, LIMITS)
    with pytest.raises(ImageTooLarge):
        check_size(1001, LIMITS)
    check_dimensions(100, 100, LIMITS)
    with pytest.raises(ImageTooLarge):
        check_dimensions(101, 100, LIMITS)
    with pytest.raises(ImageTooLarge):
        check_dimensions(501, 1, LIMITS)
    with pytest.raises(ImageTooLarge):
        check_dimensions(0, 10, LIMITS)


def test_dominant_colour_is_the_biggest_bucket() -> None:
    red, blue = bytes((250, 10, 10)), bytes((10, 10, 250))
    assert dominant_colour(red * 6 + blue * 4, 5, 2) == "#fa0a0a"
    assert dominant_colour(bytes((1, 2, 3, 3, 2, 1)), 2, 1) == "#020202"
    with pytest.raises(ValueError):
        dominant_colour(b"\x00\x00", 1, 1)


def test_manifest_lists_signed_stages_and_formats() -> None:
    signer = UrlSigner(KEY)
    facts = ImageFacts(
        "img1", 1000, 750, "A cat", "LEHV6nWB2yk8", "data:image/webp;base64,AA", "#123456"
    )
    m = build_manifest(facts, ladder=LADDER, signer=signer, small_width=640)
    assert (m["width"], m["height"], m["alt"]) == (1000, 750, "A cat")
    assert m["small"]["width"] == 640
    assert m["small"]["src"].startswith("/img/img1/640.avif?")
    assert "stage=small" in m["small"]["src"]
    assert set(m["srcset"]) == {"avif", "webp", "jpeg"}
    assert [e["width"] for e in m["srcset"]["webp"]] == [320, 480, 640, 960, 1000]
    assert m["srcset"]["jpeg"][-1]["src"].startswith("/img/img1/1280.jpeg?")
    assert m["preload"]["fetchpriority"] == "high"
    assert m["preload"]["imagesrcset"] == m["srcset_strings"]["avif"]
    for entry in m["srcset"]["avif"]:
        path, _, query = entry["src"].partition("?")
        signer.verify(path, dict(p.split("=", 1) for p in query.split("&")))
