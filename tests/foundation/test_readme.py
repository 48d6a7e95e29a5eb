"""The README's settings table is the one the code generates (no drift)."""

from __future__ import annotations

from pathlib import Path

from service.cli import settings_table

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_lists_every_setting_with_its_default() -> None:
    text = README.read_text(encoding="utf-8")
    begin = text.index("<!-- settings:begin")
    body = text[text.index("\n", begin) + 1 : text.index("<!-- settings:end -->")].strip()
    assert body == settings_table(), "regenerate with: kervan settings --table"


def test_every_setting_is_described() -> None:
    undescribed = [
        line.split("|")[1].strip()
        for line in settings_table().splitlines()[2:]
        if not line.split("|")[3].strip()
    ]
    assert undescribed == []
