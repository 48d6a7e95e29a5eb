"""The front-end files kervan serves under ``/static/``, each at two URLs.

- ``/static/<stem>.<hash>.<ext>``: the content-hashed URL, ``immutable`` for a year (a new
  release is a new URL); pages kervan renders link this one (``asset_url``).
- ``/static/<name>``: the stable URL for pages of other sites that embed a snippet by hand,
  cached for an hour and revalidated with its strong ETag (304).

Both answer ``Access-Control-Allow-Origin: *`` and the same bytes to every origin, so no
``Vary`` is needed: a shared cache keeps one copy (the edge leaves public answers alone).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

#: The files served, from the ``service.static`` package.
ASSETS = ("progressive-image.js",)
HASH_CHARS = 12
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "public, max-age=3600"
_HASHED = re.compile(r"^(?P<stem>[a-z0-9-]+)\.(?P<hash>[0-9a-f]{12})\.(?P<ext>[a-z0-9]+)$")
_TYPES = {"js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8"}


@dataclass(frozen=True, slots=True)
class Asset:
    name: str
    body: bytes
    digest: str  # sha256 hex of the body
    media_type: str

    @property
    def etag(self) -> str:
        return f'"{self.digest[:32]}"'

    @property
    def hashed_name(self) -> str:
        stem, _, ext = self.name.rpartition(".")
        return f"{stem}.{self.digest[:HASH_CHARS]}.{ext}"


@cache
def asset(name: str) -> Asset:
    if name not in ASSETS:
        raise KeyError(name)
    body = resources.files("service.static").joinpath(name).read_bytes()
    ext = name.rpartition(".")[2]
    return Asset(name, body, hashlib.sha256(body).hexdigest(), _TYPES[ext])


def asset_url(name: str) -> str:
    """The immutable URL of ``name`` (what pages kervan renders link)."""
    return f"/static/{asset(name).hashed_name}"


def lookup(file: str) -> tuple[Asset, bool] | None:
    """The asset a ``/static/<file>`` path names and whether it is the hashed URL; None when
    unknown (or a hash of another version: that URL never existed in this release)."""
    if file in ASSETS:
        return asset(file), False
    match = _HASHED.match(file)
    if match is None:
        return None
    name = f"{match['stem']}.{match['ext']}"
    if name not in ASSETS:
        return None
    found = asset(name)
    return (found, True) if found.hashed_name == file else None
