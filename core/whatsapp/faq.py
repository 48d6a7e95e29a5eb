"""The first auto-reply implementation: a keyword/FAQ responder.

Rules map keywords to answers; the first rule whose keyword occurs as a whole word in the
customer's message answers it. Deliberately simple and predictable (off by default).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from core.whatsapp.keywords import normalise


class FaqResponder:
    def __init__(self, rules: Mapping[str, str]) -> None:
        self._rules = [
            (re.compile(rf"(?<!\w){re.escape(normalise(key))}(?!\w)"), answer)
            for key, answer in rules.items()
            if normalise(key)
        ]

    def answer(self, text: str | None) -> str | None:
        if not text:
            return None
        folded = normalise(text)
        for pattern, answer in self._rules:
            if pattern.search(folded):
                return answer
        return None
