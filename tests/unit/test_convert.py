"""`convert movielens`: a folder in the MovieLens 100K layout (made up here, latin-1 and all)
into events in the contract and an item catalogue, as a user would convert their logs."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from interest_stream.schemas.events import ValidationRules, parse_event
from interest_stream.schemas.records import Provenance
from interest_stream.streams.cli import main

GENRES = ["unknown", "Action", "Comedy", "Drama"]


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "ml"
    folder.mkdir()
    (folder / "u.genre").write_text("".join(f"{g}|{i}\n" for i, g in enumerate(GENRES)) + "\n")
    items = [
        "1|Café Lumière (1997)|01-Jan-1997||http://example.invalid/1|0|0|1|1",
        "2|Rocket Duel (1996)|01-Jan-1996||http://example.invalid/2|0|1|0|0",
        "3|unknown||||1|0|0|0",
    ]
    (folder / "u.item").write_bytes(("\n".join(items) + "\n").encode("latin-1"))
    ratings = ["7\t1\t5\t874724710", "7\t2\t2\t874724720", "9\t3\t4\t891717742"]
    (folder / "u.data").write_text("\n".join(ratings) + "\n")
    return folder


def test_ratings_become_reviews_in_the_event_contract(tmp_path: Path):
    folder, events, items = _folder(tmp_path), tmp_path / "e.jsonl", tmp_path / "i.jsonl"
    result = CliRunner().invoke(
        main, ["convert", "movielens", str(folder), "-o", str(events), "--items", str(items)]
    )
    assert result.exit_code == 0, result.output
    assert "wrote 3 events (2 users, 1997-09-20 .. 1998-04-04" in result.output
    rows = [json.loads(line) for line in events.read_text(encoding="utf-8").splitlines()]
    assert rows[0] == {
        "event_id": "7-1-874724710",
        "user_id": "7",
        "ts": "1997-09-20T03:05:10Z",
        "type": "review",
        "text": "Café Lumière (1997). Genres: Comedy, Drama",
        "item_id": "1",
        "rating": 5,
        "domain": "comedy",
    }
    assert rows[2]["text"] == "unknown" and "domain" not in rows[2]  # genre 'unknown' only
    catalogue = [json.loads(line) for line in items.read_text(encoding="utf-8").splitlines()]
    assert catalogue[1] == {
        "item_id": "2",
        "text": "Rocket Duel (1996). Genres: Action",
        "domain": "action",
    }
    # Every event passes validation with the default rules: nothing of 1997 is rejected.
    for number, line in enumerate(events.read_bytes().splitlines(), 1):
        parsed = parse_event(line, Provenance("e", number), now=2e9, rules=ValidationRules())
        assert not hasattr(parsed, "reason"), parsed


def test_a_folder_that_is_not_movielens_is_one_clear_line(tmp_path: Path):
    result = CliRunner().invoke(
        main, ["convert", "movielens", str(tmp_path), "-o", str(tmp_path / "e.jsonl")]
    )
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: {tmp_path / 'u.genre'}: no such file"
        " (is this a MovieLens folder, with u.data or ratings.csv?)"
    ]
