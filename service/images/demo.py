"""The demo page of one image (``/images/{id}/demo``) and the front-end snippet it loads.

The page is a template shipped as package data (``service/static/progressive-image-demo.html``,
``$name`` placeholders). Every value is HTML-escaped before it goes in; its inline style and
script carry the request's CSP nonce, the only way they run under the policy.
"""

from __future__ import annotations

import html
from functools import cache
from importlib import resources
from string import Template
from typing import Any

from service.images.markup import preload_link, progressive_img
from service.static_assets import asset_url

_STATIC = resources.files("service.static")


@cache
def _template() -> Template:
    return Template(_STATIC.joinpath("progressive-image-demo.html").read_text(encoding="utf-8"))


def demo_page(manifest: dict[str, Any], nonce: str) -> str:
    """The page for ``manifest`` (relative URLs: the page is served by the same origin)."""
    return _template().substitute(
        alt=html.escape(manifest["alt"]),
        nonce=html.escape(nonce),
        background=html.escape(manifest["dominant_color"]),
        preload=preload_link(manifest),
        hero=progressive_img(manifest, priority=True, element_id="hero"),
        below=progressive_img(manifest, element_id="below"),
        script=asset_url("progressive-image.js"),
    )
