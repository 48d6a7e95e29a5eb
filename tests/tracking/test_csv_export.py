"""CSV cells and lines (``core.tracking.csv_export``): RFC 4180 framing, formula escaping, and
typed values; read back by Python's ``csv`` module, the escaping is the only change."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.tracking.csv_export import (
    CRLF,
    FORMULA_TRIGGERS,
    CellFormat,
    escape_formula,
    header,
    line,
    quote,
    text_cell,
)

ISTANBUL = CellFormat(ZoneInfo("Europe/Istanbul"))


def read_back(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


@pytest.mark.parametrize("first", ["=", "+", "-", "@", "\t", "\r"])
def test_every_formula_trigger_gets_a_leading_quote(first: str) -> None:
    assert escape_formula(first + "1+1") == "'" + first + "1+1"


@pytest.mark.parametrize(
    "value",
    ["", "plain", "a=b", " =1+1", "'already", "1-2", "x@y", "\n=1", "\uff1d1"],
)
def test_other_text_is_left_alone(value: str) -> None:
    assert escape_formula(value) == value


def test_quoting_follows_rfc_4180() -> None:
    assert quote("plain text") == "plain text"
    assert quote("a,b") == '"a,b"'
    assert quote('say "hi"') == '"say ""hi"""'
    assert quote("two\nlines") == '"two\nlines"'
    assert quote("cr\rhere") == '"cr\rhere"'
    assert quote("crlf\r\n") == '"crlf\r\n"'
    assert quote("") == ""


def test_a_formula_with_a_comma_is_escaped_then_quoted() -> None:
    cell = text_cell('=HYPERLINK("http://evil.example","x")')
    assert cell == '"\'=HYPERLINK(""http://evil.example"",""x"")"'
    assert read_back(line([cell]))[0] == ['\'=HYPERLINK("http://evil.example","x")']


def test_a_cr_first_cell_is_escaped_and_quoted() -> None:
    assert text_cell("\r=1") == '"\'\r=1"'


def test_lines_end_with_crlf_and_one_empty_field_is_not_an_empty_line() -> None:
    assert line(["a", "b"]) == "a,b" + CRLF
    assert line(["", ""]) == "," + CRLF
    assert line([""]) == '""' + CRLF
    assert read_back(line([""])) == [[""]]


def test_typed_values() -> None:
    at = datetime(2026, 11, 9, 21, 0, 0, 123456, tzinfo=UTC)
    cells = [
        None,
        True,
        False,
        0,
        -7,
        Decimal("1250.50"),
        Decimal("-12.50"),
        Decimal("1E+2"),
        at,
        date(2026, 11, 10),
        "-5",
    ]
    assert ISTANBUL.row(cells) == (
        ",true,false,0,-7,1250.50,-12.50,100,2026-11-10T00:00:00+03:00,2026-11-10,'-5" + CRLF
    )


def test_timestamps_carry_the_zones_offset_across_dst() -> None:
    berlin = CellFormat(ZoneInfo("Europe/Berlin"))
    # 2026-10-25 02:30 local happens twice; the offset tells them apart.
    assert berlin.cell(datetime(2026, 10, 25, 0, 30, tzinfo=UTC)) == "2026-10-25T02:30:00+02:00"
    assert berlin.cell(datetime(2026, 10, 25, 1, 30, tzinfo=UTC)) == "2026-10-25T02:30:00+01:00"


def test_values_without_a_safe_cell_are_refused() -> None:
    with pytest.raises(ValueError):
        ISTANBUL.cell(datetime(2026, 1, 1))  # naive: which zone?
    with pytest.raises(ValueError):
        ISTANBUL.cell(Decimal("NaN"))
    with pytest.raises(TypeError):
        ISTANBUL.cell(1.5)  # type: ignore[arg-type]


def test_header_cells_are_text_cells() -> None:
    assert header(["id", "created_at (Europe/Istanbul)", "a,b"]) == (
        'id,created_at (Europe/Istanbul),"a,b"' + CRLF
    )


# Text as exports meet it: any characters, formula triggers and separators made frequent.
_text = st.text(
    alphabet=st.one_of(
        st.sampled_from([*FORMULA_TRIGGERS, ",", '"', "\n", "\r", "'", " "]),
        st.characters(codec="utf-8", exclude_categories=("Cs",)),
    ),
    max_size=30,
)


@given(st.lists(_text, min_size=1, max_size=8))
def test_round_trip_through_the_csv_module(cells: list[str]) -> None:
    encoded = line([text_cell(cell) for cell in cells])
    assert encoded.endswith(CRLF)
    assert read_back(encoded) == [[escape_formula(cell) for cell in cells]]


@given(st.lists(st.lists(_text, min_size=2, max_size=5), min_size=1, max_size=6))
def test_many_lines_read_back_as_many_rows(rows: list[list[str]]) -> None:
    encoded = "".join(line([text_cell(cell) for cell in row]) for row in rows)
    assert read_back(encoded) == [[escape_formula(cell) for cell in row] for row in rows]


@given(st.lists(st.decimals(allow_nan=False, allow_infinity=False, places=2), min_size=1))
def test_numbers_are_never_escaped_and_read_back_exactly(values: list[Decimal]) -> None:
    parsed = read_back(ISTANBUL.row(values))[0]
    assert [Decimal(cell) for cell in parsed] == values
    assert not any(cell.startswith("'") for cell in parsed)
