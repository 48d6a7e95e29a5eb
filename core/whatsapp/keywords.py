# ruff: noqa: RUF001  (Turkish text legitimately contains the dotless i)
"""Consent keywords a customer can send: ``STOP`` (and its Turkish, German and long forms)
withdraws WhatsApp consent, ``START`` grants it again.

Only a message that consists of the keyword alone counts, so "don't stop" or "stop by tomorrow"
never unsubscribes anyone.
"""

from __future__ import annotations

import unicodedata
from typing import Literal

KeywordAction = Literal["stop", "start"]

STOP_WORDS = frozenset({"stop", "dur", "stopp", "unsubscribe"})
START_WORDS = frozenset({"start"})
#: Turkish keyboards produce dotless/dotted i variants that ``casefold`` keeps distinct.
_TURKISH_I = str.maketrans({"ı": "i", "İ": "i"})
_TRIM = " \t\r\n.!?,;:'\"()[]*_~-"


def normalise(text: str) -> str:
    folded = unicodedata.normalize("NFKC", text).translate(_TURKISH_I).casefold()
    # NFKD then dropping combining marks turns a leftover "i̇" (i + dot) into plain "i".
    decomposed = unicodedata.normalize("NFKD", folded)
    plain = "".join(char for char in decomposed if not unicodedata.combining(char))
    return plain.strip(_TRIM)


def detect_keyword(text: str | None) -> KeywordAction | None:
    if not text or len(text) > 64:
        return None
    word = normalise(text)
    if word in STOP_WORDS:
        return "stop"
    if word in START_WORDS:
        return "start"
    return None
