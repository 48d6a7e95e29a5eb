"""The JSON body shape the flows API shares: an object holding one bounded array of items."""

from __future__ import annotations

from typing import Any

from core.errors import ValidationFailed


def array_member(body: Any, key: str, limit: int) -> list[Any]:
    """``body[key]``, which must be an array of at most ``limit`` items."""
    if not isinstance(body, dict) or not isinstance(body.get(key), list):
        raise ValidationFailed(
            f"the body must be an object with a '{key}' array",
            details=[{"field": f"body.{key}", "message": "required array"}],
        )
    items: list[Any] = body[key]
    if len(items) > limit:
        raise ValidationFailed(
            f"at most {limit} {key} per request",
            details=[{"field": f"body.{key}", "message": f"{len(items)} > {limit}"}],
        )
    return items
