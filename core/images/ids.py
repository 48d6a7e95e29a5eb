"""Image ids: 12 random bytes, written as 24 lower-case hex digits."""

from __future__ import annotations

import re
import secrets

IMAGE_ID_BYTES = 12
#: The form every id is minted in; the OpenAPI document states this same pattern.
IMAGE_ID_PATTERN = f"^[0-9a-f]{{{2 * IMAGE_ID_BYTES}}}$"
_IMAGE_ID = re.compile(IMAGE_ID_PATTERN)


def new_image_id() -> str:
    return secrets.token_hex(IMAGE_ID_BYTES)


def is_image_id(text: str) -> bool:
    """Whether ``text`` has the form of a minted id (a lookup may still find nothing)."""
    return _IMAGE_ID.fullmatch(text) is not None
