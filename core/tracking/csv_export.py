"""CSV lines a spreadsheet may open safely: RFC 4180 framing and formula-injection escaping.

**Framing (RFC 4180).** Lines end with CRLF; a field holding a comma, a double quote, CR or LF
is enclosed in double quotes, and its double quotes are doubled. Nothing else is quoted, and a
line of one empty field is written ``""`` (an empty line would read back as no field at all).

**Formula injection (OWASP "CSV Injection").** A text cell starting with ``=``, ``+``, ``-``,
``@``, TAB or CR is read as a formula by Excel, LibreOffice or Google Sheets; such a cell gets a
leading ``'``, which the spreadsheet shows as text. That prefix is the only change to a value:
parsed back with any RFC 4180 reader (Python's ``csv``), every other cell is exactly what was
written. Numbers this module formats itself (``int``, ``Decimal``) are not escaped: ``-12.50`` is
a number literal, never a formula, and escaping it would turn refunds into text.

**Values.** ``None`` is an empty cell; ``bool`` is ``true``/``false``; ``Decimal`` is written in
positional notation (never ``1E+2``); a ``datetime`` must be aware and is written in ISO 8601
with its UTC offset, whole seconds, in the zone the ``CellFormat`` names (the export's header
names that zone too); a ``date`` is ``YYYY-MM-DD``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

CRLF = "\r\n"
#: First characters that make a spreadsheet evaluate a cell (OWASP's list).
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
FORMULA_ESCAPE = "'"

Cell = str | int | Decimal | datetime | date | bool | None

_NEEDS_QUOTES = re.compile(r'[,"\r\n]')
#: Anything that needs escaping or quoting; most cells match nothing and are returned as they are.
_NEEDS_WORK = re.compile(r'^[=+\-@\t\r]|[,"\r\n]')


def escape_formula(text: str) -> str:
    """``text`` with a leading ``'`` when a spreadsheet would read it as a formula."""
    return FORMULA_ESCAPE + text if text.startswith(FORMULA_TRIGGERS) else text


def quote(field: str) -> str:
    """``field`` framed per RFC 4180 (quoted only when it must be)."""
    if _NEEDS_QUOTES.search(field) is None:
        return field
    return '"' + field.replace('"', '""') + '"'


def text_cell(value: str) -> str:
    if _NEEDS_WORK.search(value) is None:
        return value
    return quote(escape_formula(value))


def line(fields: Sequence[str]) -> str:
    """Already encoded fields as one CRLF-terminated line."""
    if len(fields) == 1 and fields[0] == "":
        return '""' + CRLF
    return ",".join(fields) + CRLF


def _empty(value: None) -> str:
    return ""


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _decimal(value: Decimal) -> str:
    if not value.is_finite():
        raise ValueError(f"{value} is not a finite number")
    return format(value, "f")


class CellFormat:
    """How values become cells; timestamps are shown in ``zone``."""

    __slots__ = ("_by_type", "zone")

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone
        # Exact types first (one lookup per cell on the export's hot path); subclasses fall
        # back to ``cell``'s checks.
        self._by_type: dict[type, Callable[[Any], str]] = {
            type(None): _empty,
            str: text_cell,
            bool: _bool,
            int: int.__str__,
            Decimal: _decimal,
            datetime: self._timestamp,
            date: date.isoformat,
        }

    def _timestamp(self, value: datetime) -> str:
        if value.tzinfo is None:
            raise ValueError("a timestamp cell needs an aware datetime")
        return value.astimezone(self.zone).isoformat(timespec="seconds")

    def cell(self, value: Cell) -> str:
        if value is None:
            return ""
        if isinstance(value, str):
            return text_cell(value)
        if isinstance(value, bool):  # before int: a bool is an int
            return _bool(value)
        if isinstance(value, int):
            return int.__str__(value)
        if isinstance(value, Decimal):
            return _decimal(value)
        if isinstance(value, datetime):  # before date: a datetime is a date
            return self._timestamp(value)
        if isinstance(value, date):
            return value.isoformat()
        raise TypeError(f"no CSV cell for {type(value).__name__}")

    def row(self, values: Iterable[Cell]) -> str:
        by_type, fallback = self._by_type, self.cell
        return line([by_type.get(type(value), fallback)(value) for value in values])


def header(names: Iterable[str]) -> str:
    """The header line: column names are text cells like any other."""
    return line([text_cell(name) for name in names])
