"""Segments: ``<language>-<device>`` labels (``tr-m``, ``de-d``, ``en-d``) that split the flows.

A segment's syntax is fixed here; which segments a deployment serves is a setting. A segment
outside that set is refused rather than silently creating a new one, so a typo in a front end
cannot scatter its data.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from core.errors import ValidationFailed

#: Stored in VARCHAR(8), as in the original schema.
MAX_SEGMENT_LENGTH = 8
#: The syntax of a segment; the OpenAPI document states this same pattern.
SEGMENT_PATTERN = r"^([a-z]{2,3})-([a-z]{1,4})$"
_SEGMENT = re.compile(SEGMENT_PATTERN)


def is_valid_segment(seg: str) -> bool:
    return len(seg) <= MAX_SEGMENT_LENGTH and _SEGMENT.match(seg) is not None


def language_of(seg: str) -> str:
    """``"en-d"`` -> ``"en"``."""
    return seg.split("-", 1)[0]


def validate_segment(seg: str, known: Collection[str]) -> str:
    if not is_valid_segment(seg):
        raise ValidationFailed(
            "seg must be '<language>-<device>' (2-3 and 1-4 lower-case letters, e.g. 'en-d')",
            details={"seg": seg[:32]},
        )
    if seg not in known:
        raise ValidationFailed("unknown segment", details={"seg": seg, "known": sorted(known)})
    return seg


#: The original design's start pages: the home page and the language's project list.
DEFAULT_START_TEMPLATES = ("/", "/{lang}/projects")


def start_paths(seg: str, templates: Collection[str] = DEFAULT_START_TEMPLATES) -> list[str]:
    """The start pages of ``seg``: ``{lang}`` in each template becomes the segment's language."""
    lang = language_of(seg)
    return [t.replace("{lang}", lang) for t in templates]
