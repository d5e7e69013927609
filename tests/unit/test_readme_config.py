"""The README's configuration table says what the settings do: every setting is in it,
every variable in it is a setting, and every default it states is the real one."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from interest_stream.streams.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"
NONE = "–"


def _table() -> dict[str, str]:
    """variable -> default as written, from the table under "## Configuration"."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        names = re.findall(r"`([A-Z0-9_]+)`", cells[0])
        defaults = [d.strip() for d in cells[1].split(" / ")]
        if len(defaults) == 1:
            defaults *= len(names)
        assert len(defaults) == len(names), f"row {cells[0]}: {len(names)} names, {cells[1]}"
        rows.update(zip(names, defaults, strict=True))
    return rows


def _same(written: str, value: Any) -> bool:
    written = written.strip("`")
    if value is None:
        return written == NONE
    if isinstance(value, SecretStr):
        return written == NONE
    if isinstance(value, bool):
        return written == str(value).lower()
    if isinstance(value, int | float):
        return float(written.replace(",", "")) == float(value)
    if value == "":
        return written == "empty"
    return written == str(value)


def test_every_setting_is_in_the_table_with_its_default() -> None:
    rows = _table()
    fields = Settings.model_fields
    documented = {name.lower() for name in rows}
    assert set(fields) - documented == set(), "settings missing from the README table"
    assert documented - set(fields) == set(), "README variables that are no settings"
    defaults = Settings.model_construct()
    wrong = {
        name: (rows[name], getattr(defaults, name.lower()))
        for name in rows
        if name.lower() != "model_dir"  # "~/.cache/...": resolved at start-up
        and not _same(rows[name], getattr(defaults, name.lower()))
    }
    assert wrong == {}, "README defaults that differ from the settings"
