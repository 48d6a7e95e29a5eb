"""The name and version kervan reports (the API document, the index page, the start-up)."""

from __future__ import annotations

TITLE = "kervan"
#: Kept equal to pyproject's ``version`` (a test compares them).
VERSION = "0.1.0"
