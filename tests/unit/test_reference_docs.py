"""The generated reference pages are what the code says: docs/configuration.md from the
`Settings` fields and docs/cli.md from the click commands. After changing either, run
`python -m interest_stream.streams.lab.reference`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from interest_stream.streams.lab import reference
from interest_stream.streams.settings import Settings, env_name


@pytest.mark.parametrize("page", [reference.CONFIGURATION, reference.CLI])
def test_committed_page_is_the_generated_one(page: str) -> None:
    committed = (reference.DOCS / page).read_text(encoding="utf-8")
    assert committed == reference.render()[page], (
        f"docs/{page} is stale: run python -m {reference.MODULE}"
    )


def test_every_setting_has_a_row_with_its_variable_and_a_description() -> None:
    page = reference.configuration_page()
    variables = re.findall(r"^\| `(INTEREST_STREAM_[A-Z0-9_]+)` \|", page, flags=re.M)
    assert variables == [env_name(name) for name in Settings.model_fields]
    assert all(field.description for field in Settings.model_fields.values())


def test_a_row_shows_the_default_the_settings_use() -> None:
    page = reference.configuration_page()
    assert "| `INTEREST_STREAM_BATCH_SIZE` | `1024` |" in page
    assert "| `INTEREST_STREAM_KAFKA_PASSWORD` | – |" in page  # a secret shows no value
    assert "| `INTEREST_STREAM_TOPIC_PREFIX` | empty |" in page
    assert "One of `auto`, `fp32`, `int8`, `fp16`." in page  # a Literal's choices


def test_a_setting_without_description_is_refused() -> None:
    from pydantic.fields import FieldInfo

    with pytest.raises(ValueError, match="no description"):
        reference._setting_row("undocumented", FieldInfo(default=1))


@pytest.mark.parametrize("path", [[], ["profile", "get"], ["bench", "encoder"]])
def test_cli_sections_are_what_help_prints(path: list[str]) -> None:
    # The real command in a terminal wider than click's 80-column cap (CliRunner would
    # force a width of its own).
    command = Path(sys.executable).with_name("interest-stream")  # the installed script
    result = subprocess.run(
        [str(command), *path, "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "120"},
        check=True,
    )
    output = result.stdout
    name = " ".join(["interest-stream", *path])
    section = f"## `{name}`\n\n```text\n{output.rstrip()}\n```"
    assert section in reference.cli_page()
