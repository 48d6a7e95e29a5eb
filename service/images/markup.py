"""Server-side markup of a progressive image (what the front end's image component renders)."""

from __future__ import annotations

import html
from typing import Any

import orjson

_CLIENT_KEYS = ("blurhash", "small", "srcset", "sizes")


def progressive_img(
    manifest: dict[str, Any], *, priority: bool = False, element_id: str | None = None
) -> str:
    """An ``<img>`` showing the placeholder at once, with everything the snippet needs."""
    client = {key: manifest[key] for key in _CLIENT_KEYS}
    attrs: dict[str, str] = {"id": element_id} if element_id is not None else {}
    attrs |= {
        "class": "kv-progressive",
        "width": str(manifest["width"]),
        "height": str(manifest["height"]),
        "alt": manifest["alt"],
        "src": manifest["preview"],
        "decoding": "async",
        "data-kv-manifest": orjson.dumps(client).decode(),
    }
    if priority:
        attrs["fetchpriority"] = "high"
        attrs["data-kv-priority"] = "high"
    else:
        attrs["loading"] = "lazy"
    rendered = " ".join(
        f'{name}="{html.escape(value, quote=True)}"' for name, value in attrs.items()
    )
    return f"<img {rendered}>"


def preload_link(manifest: dict[str, Any]) -> str:
    """The ``<link rel=preload>`` for the LCP image, to put in ``<head>``."""
    hint = manifest["preload"]
    attrs = {
        "rel": "preload",
        "as": "image",
        "type": hint["type"],
        "imagesrcset": hint["imagesrcset"],
        "imagesizes": hint["imagesizes"],
        "fetchpriority": "high",
    }
    rendered = " ".join(
        f'{name}="{html.escape(value, quote=True)}"' for name, value in attrs.items()
    )
    return f"<link {rendered}>"
