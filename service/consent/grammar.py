"""The text forms of the consent API, as the patterns ``/openapi.json`` publishes.

Each pattern is built from the constants the code checks with (``core.consent``), so the
document and the checks cannot drift; ``tests/consent/test_consent_grammar.py`` shows that each
pattern accepts exactly what the code accepts. Where the code's own check gives the clearer
error (an unknown purpose is listed by name), the model only documents the pattern
(``Documented``) and leaves the check to the code.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from core.consent.model import SUBJECT_MAX_LENGTH, SUBJECT_PATTERN
from core.consent.purposes import DEFAULT_PURPOSES, REGION_CODE

# What str.strip() removes, spelled out: "\s" of a JSON-schema (ECMA-262) regex is a slightly
# different set (it has U+FEFF, lacks U+001C-U+001F and U+0085).
WHITESPACE = r"[\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
PURPOSE_NAMES: tuple[str, ...] = tuple(purpose.name for purpose in DEFAULT_PURPOSES)
_PURPOSE = "(?:" + "|".join(re.escape(name) for name in PURPOSE_NAMES) + ")"

SUBJECT = SUBJECT_PATTERN
SUBJECT_LENGTH = SUBJECT_MAX_LENGTH
#: A region code in any case, surrounding whitespace ignored; blank means "unknown".
REGION = f"^{WHITESPACE}*(?:{REGION_CODE})?{WHITESPACE}*$"
#: Comma-separated purposes, each part stripped and empty parts skipped, at least one purpose.
#: Written so that every character has one way to match (no backtracking blow-up).
PURPOSE_LIST = (
    f"^(?:{WHITESPACE}*,)*{WHITESPACE}*{_PURPOSE}{WHITESPACE}*"
    f"(?:,{WHITESPACE}*(?:{_PURPOSE}{WHITESPACE}*)?)*$"
)


def split_purposes(text: str) -> list[str]:
    """The purposes named in a ``PURPOSE_LIST`` text; which of them exist the registry checks."""
    return [part.strip() for part in text.split(",") if part.strip()]


class Documented:
    """Extra JSON-schema keywords for a field whose rule the code checks itself.

    Use in ``Annotated[str, Field(...), Documented(pattern=...)]``: the keywords land on the
    string's own schema (inside the ``anyOf`` of an optional field).
    """

    def __init__(self, **keywords: Any) -> None:
        self.keywords = keywords

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        schema.update(self.keywords)
        return schema
