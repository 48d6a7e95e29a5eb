"""The conversation list's keyset cursor: ``<micros>:<convo id>`` in unpadded URL-safe base64.

Clients treat it as opaque, yet ``/openapi.json`` states exactly which strings are cursors
(``PATTERN``) and :func:`decode` accepts exactly those, so a schema-valid cursor is never
refused and every other string is refused with 400. Cursors are only ever issued in this
form, so refusing the rest (say, a forged ``" 1:+2"``) refuses nothing the API handed out.

Why the pattern is short: the raw cursor holds only digits (0x30-0x39) and one colon (0x3A),
whose top nibble is always 0011. Base64 turns each 3 bytes b0 b1 b2 into 4 characters; with
that nibble fixed, b1 and b2 each land whole in one character of their own, and only b0 is
split over two characters (its bits 3-2, then its bits 1-0 beside b1's fixed nibble). So each
byte maps to a fixed snippet by its place in its group, and "digits, a colon, digits" becomes
a concatenation of snippets, cased by where the colon falls in its group.
"""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime

from service.db.types import from_timestamp
from service.errors import ApiError

#: Conversation ids are BIGINT; a cursor naming a larger one orders after every id.
MAX_ID = 2**63 - 1
MAX_LENGTH = 64
#: A cursor beyond the last representable instant means "before the end of time".
LATEST = datetime.max.replace(tzinfo=UTC)

# A digit or the colon as the first byte of a full (or two-byte final) group, the second and
# the third byte of a group, and the only byte of a one-byte final group.
_DIGIT_0, _COLON_0 = "(?:[MN][DTjz]|O[DT])", "Oj"
_DIGIT_1, _COLON_1 = "[AEIMQUYcgk]", "o"
_DIGIT_2, _COLON_2 = "[w-z0-5]", "6"
_DIGIT_LAST = "(?:[MN][AQgw]|O[AQ])"


def _pattern() -> str:
    group = _DIGIT_0 + _DIGIT_1 + _DIGIT_2  # three digits
    rest = f"(?:{group})*(?:{_DIGIT_LAST}|{_DIGIT_0}{_DIGIT_1})?"  # any digits from a group start
    colon_first = f"(?:{group})+{_COLON_0}{_DIGIT_1}(?:{_DIGIT_2}{rest})?"
    colon_second = f"(?:{group})*{_DIGIT_0}{_COLON_1}{_DIGIT_2}{rest}"
    some_digits = f"(?:{group})*(?:{group}|{_DIGIT_LAST}|{_DIGIT_0}{_DIGIT_1})"
    colon_third = f"(?:{group})*{_DIGIT_0}{_DIGIT_1}{_COLON_2}{some_digits}"
    return f"{colon_first}|{colon_second}|{colon_third}"


_CURSOR = re.compile(_pattern())
#: What the ``cursor`` query parameter accepts: a cursor, or empty for the first page.
PATTERN = f"^(?:{_CURSOR.pattern})?$"


def encode(last_activity_at: datetime, convo_id: int) -> str:
    micros = int(last_activity_at.timestamp() * 1_000_000)
    return base64.urlsafe_b64encode(f"{micros}:{convo_id}".encode()).decode().rstrip("=")


def decode(cursor: str) -> tuple[datetime, int]:
    """The (last activity, id) the page continues after; ids past ``MAX_ID`` stay as given
    (the caller orders them after every id). Anything but a cursor is refused with 400."""
    if len(cursor) > MAX_LENGTH or _CURSOR.fullmatch(cursor) is None:
        raise ApiError(400, "invalid_cursor", "the cursor is not one this API issued")
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    micros, convo_id = raw.split(":")
    return _instant(int(micros)), int(convo_id)


def _instant(micros: int) -> datetime:
    try:
        return from_timestamp(micros / 1_000_000)
    except (OverflowError, OSError, ValueError):
        return LATEST
