"""The demo page template (package data) and what goes into it."""

from __future__ import annotations

import re
from importlib import resources
from string import Template
from typing import Any

from service.images.demo import demo_page
from service.static_assets import asset, asset_url

NONCE = "n0nce_-AbC"


def _manifest(**overrides: Any) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "id": "0" * 24,
        "width": 800,
        "height": 600,
        "alt": "A test card",
        "blurhash": "LKO2?U%2Tw=w]~RBVZRi};RPxuwH",
        "preview": "data:image/webp;base64,UklGRg==",
        "dominant_color": "#a1b2c3",
        "small": {"src": "/img/x/640.avif?s=a&stage=small", "width": 640, "type": "image/avif"},
        "srcset": {"avif": [{"src": "/img/x/320.avif?s=b&stage=full", "width": 320}]},
        "sizes": "(max-width: 800px) 100vw, 800px",
        "preload": {
            "type": "image/avif",
            "imagesrcset": "/img/x/320.avif?s=b&stage=full 320w",
            "imagesizes": "(max-width: 800px) 100vw, 800px",
        },
    }
    manifest.update(overrides)
    return manifest


def test_the_template_ships_as_package_data_and_every_placeholder_is_filled() -> None:
    text = resources.files("service.static").joinpath("progressive-image-demo.html").read_text()
    assert set(Template(text).get_identifiers()) == {
        "alt",
        "nonce",
        "background",
        "preload",
        "hero",
        "below",
        "script",
    }
    page = demo_page(_manifest(), NONCE)
    assert page.startswith("<!doctype html>")
    assert "$" not in page


def test_alt_text_is_escaped_everywhere_and_never_read_as_a_placeholder() -> None:
    alt = 'Quote " & <script>alert(1)</script> $nonce ${alt}'
    page = demo_page(_manifest(alt=alt), NONCE)
    escaped = "Quote &quot; &amp; &lt;script&gt;alert(1)&lt;/script&gt; $nonce ${alt}"
    assert f"<title>Progressive image: {escaped}</title>" in page
    assert page.count(f'alt="{escaped}"') == 2
    assert "<script>alert" not in page


def test_inline_style_and_scripts_carry_the_nonce() -> None:
    page = demo_page(_manifest(), NONCE)
    assert f'<style nonce="{NONCE}">' in page
    assert page.count(f'<script nonce="{NONCE}"') == 2
    script = asset_url("progressive-image.js")
    assert script.startswith("/static/progressive-image.") and script.endswith(".js")
    assert f'<script nonce="{NONCE}" src="{script}"></script>' in page
    # Nothing runs without it.
    assert not re.search(r"<(script|style)(?![^>]*nonce=)", page)


def test_both_images_the_preload_and_the_placeholder_colour() -> None:
    page = demo_page(_manifest(dominant_color="#0a0b0c"), NONCE)
    assert "background:#0a0b0c}" in page
    assert '<img id="hero" class="kv-progressive" width="800" height="600"' in page
    assert 'fetchpriority="high" data-kv-priority="high"' in page
    assert '<img id="below" class="kv-progressive"' in page and 'loading="lazy"' in page
    assert '<link rel="preload" as="image" type="image/avif"' in page
    # URLs in attributes are escaped too (& in signed query strings).
    assert 'imagesrcset="/img/x/320.avif?s=b&amp;stage=full 320w"' in page


def test_the_snippet_is_package_data_too() -> None:
    assert b"IntersectionObserver" in asset("progressive-image.js").body
