"""`convert movielens` on the CSV releases (latest, 25M, 32M) and `convert amazon` on both
Amazon Reviews JSON-lines layouts: small folders made up here, converted as a user would,
every event checked against the contract and every skipped row counted."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from click.testing import CliRunner

from interest_stream.schemas.events import ValidationRules, parse_event
from interest_stream.schemas.records import Provenance
from interest_stream.streams.cli import main
from interest_stream.streams.lab.convert import convert_amazon, convert_movielens
from interest_stream.streams.lab.convert.output import MAX_TEXT


def _valid(path: Path) -> list[dict[str, object]]:
    rows = []
    for number, line in enumerate(path.read_bytes().splitlines(), 1):
        parsed = parse_event(line, Provenance("e", number), now=2e9, rules=ValidationRules())
        assert not hasattr(parsed, "reason"), parsed
        rows.append(json.loads(line))
    return rows


def _ml_csv(tmp_path: Path) -> Path:
    folder = tmp_path / "ml-latest-small"
    folder.mkdir()
    (folder / "movies.csv").write_text(
        "movieId,title,genres\n"
        "1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy\n"
        '11,"American President, The (1995)",Comedy|Drama|Romance\n'
        "99,Nameless (2020),(no genres listed)\n",
        encoding="utf-8",
    )
    (folder / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n"
        "1,1,4.0,964982703\n"
        "1,11,0.5,964981247\n"
        "2,99,3.5,1445714835\n"
        "2,404,5.0,1445714836\n"  # a movie missing from movies.csv
        "3,1,six,1445714837\n",  # not a number
        encoding="utf-8",
    )
    (folder / "tags.csv").write_text(
        "userId,movieId,tag,timestamp\n"
        "2,1,pixar,1445714994\n"
        '2,11,"witty, warm",1445715000\n'
        "2,1,   ,1445715001\n",  # an empty tag
        encoding="utf-8",
    )
    return folder


def test_movielens_csv_layout_ratings_and_tags(tmp_path: Path):
    events, items = tmp_path / "e.jsonl", tmp_path / "i.jsonl"
    done = convert_movielens(_ml_csv(tmp_path), events, items)
    rows = _valid(events)
    assert rows[0] == {
        "event_id": "1-1-964982703",
        "user_id": "1",
        "ts": "2000-07-30T18:45:03Z",
        "type": "review",
        "text": "Toy Story (1995). Genres: Adventure, Animation, Children, Comedy, Fantasy",
        "item_id": "1",
        "rating": 4,
        "domain": "adventure",
    }
    assert rows[1]["rating"] == 1 and rows[1]["text"].startswith("American President, The")
    assert rows[2]["rating"] == 3.5 and rows[2]["text"] == "Nameless (2020)"
    assert "domain" not in rows[2]
    tags = [r for r in rows if "rating" not in r]
    assert [t["text"] for t in tags] == ["pixar", "witty, warm"]
    assert all(t["type"] == "review" and t["item_id"] for t in tags)
    assert done.events == 5 and len(done.users) == 2 and done.items == 3
    assert done.skipped == {
        "movie not in the catalogue": 1,
        "malformed line": 1,
        "empty tag": 1,
    }
    assert done.adjusted == {"rating 0.5 written as 1": 1}
    catalogue = [json.loads(line) for line in items.read_text(encoding="utf-8").splitlines()]
    assert catalogue[1] == {
        "item_id": "11",
        "text": "American President, The (1995). Genres: Comedy, Drama, Romance",
        "domain": "comedy",
    }


def test_movielens_csv_from_the_command_line_reports_skips(tmp_path: Path):
    result = CliRunner().invoke(
        main,
        ["convert", "movielens", str(_ml_csv(tmp_path)), "-o", str(tmp_path / "e.jsonl")],
    )
    assert result.exit_code == 0, result.output
    assert "wrote 5 events (3 ratings, 2 tags) (2 users, 2000-07-30 .. 2015-10-24" in (
        result.output
    )
    assert "skipped 3: empty tag x1, malformed line x1, movie not in the catalogue x1" in (
        result.output
    )
    assert "note: rating 0.5 written as 1 x1" in result.output


def test_movielens_csv_without_tags(tmp_path: Path):
    events = tmp_path / "e.jsonl"
    done = convert_movielens(_ml_csv(tmp_path), events, None, tags=False)
    assert done.kinds == {"rating": 3}


def test_movielens_csv_with_a_wrong_header_is_one_clear_error(tmp_path: Path):
    folder = _ml_csv(tmp_path)
    (folder / "movies.csv").write_text("id;title\n1;x\n", encoding="utf-8")
    result = CliRunner().invoke(
        main, ["convert", "movielens", str(folder), "-o", str(tmp_path / "e.jsonl")]
    )
    assert result.exit_code == 2
    assert "movies.csv:1: expected the header movieId,title,genres" in result.output


REVIEWS_2018 = [
    {
        "reviewerID": "A1",
        "asin": "B001",
        "overall": 5.0,
        "summary": "Great for travel",
        "reviewText": "I used it on a two-week trip. Battery lasted all day.",
        "unixReviewTime": 1252800000,
    },
    {
        "reviewerID": "A2",
        "asin": "B002",
        "overall": 2.0,
        "reviewText": "Broke after a week.",
        "unixReviewTime": 1252800100,
    },
    {"reviewerID": "A3", "asin": "B001", "overall": 4.0, "unixReviewTime": 1252800200},
    {"reviewerID": "A4", "overall": 4.0, "reviewText": "no item", "unixReviewTime": 1},
    {"reviewerID": "A5", "asin": "B003", "overall": 0, "summary": "x", "unixReviewTime": 9},
]
REVIEWS_2023 = [
    {
        "rating": 4.0,
        "title": "Solid",
        "text": "Does what it says." + " More words here." * 400,
        "asin": "B00YQ6X8EO",
        "parent_asin": "P1",
        "user_id": "AGKH",
        "timestamp": 1588687728923,
        "helpful_vote": 0,
        "verified_purchase": True,
    }
]


def test_amazon_2014_2018_layout_with_metadata(tmp_path: Path):
    reviews = tmp_path / "reviews.json.gz"
    with gzip.open(reviews, "wt", encoding="utf-8") as handle:
        for record in REVIEWS_2018:
            handle.write(json.dumps(record) + "\n")
        handle.write("not json at all\n")
    metadata = tmp_path / "meta.json"
    # The 2014 metadata files hold Python literals, not JSON.
    metadata.write_text(
        "{'asin': 'B001', 'title': 'Travel Charger', 'categories': [['Electronics', 'X']]}\n"
        + json.dumps({"asin": "B002", "title": "Cable", "category": ["Cell Phones"]})
        + "\n"
        + json.dumps({"asin": "B999", "title": "Never reviewed"})
        + "\n",
        encoding="utf-8",
    )
    events, items = tmp_path / "e.jsonl", tmp_path / "i.jsonl"
    done = convert_amazon(reviews, events, metadata=metadata, items_path=items)
    rows = _valid(events)
    assert rows[0] == {
        "event_id": "A1-B001-1252800000",
        "user_id": "A1",
        "ts": "2009-09-13T00:00:00Z",
        "type": "review",
        "text": "Great for travel. I used it on a two-week trip. Battery lasted all day.",
        "item_id": "B001",
        "rating": 5,
    }
    assert rows[1]["text"] == "Broke after a week." and rows[1]["rating"] == 2
    assert len(rows) == 2
    assert done.skipped == {
        "no review text": 1,
        "no reviewer or item id": 1,
        "rating outside 1..5": 1,
        "not a JSON object": 1,
    }
    catalogue = [json.loads(line) for line in items.read_text(encoding="utf-8").splitlines()]
    assert catalogue == [
        {"item_id": "B001", "text": "Travel Charger", "domain": "electronics"},
        {"item_id": "B002", "text": "Cable", "domain": "cell phones"},
    ]


def test_amazon_2023_layout_times_in_ms_and_long_texts_cut(tmp_path: Path):
    reviews = tmp_path / "Books.jsonl"
    reviews.write_text("".join(json.dumps(r) + "\n" for r in REVIEWS_2023), encoding="utf-8")
    result = CliRunner().invoke(
        main,
        ["convert", "amazon", str(reviews), "-o", str(tmp_path / "e.jsonl"), "--domain", "books"],
    )
    assert result.exit_code == 0, result.output
    assert "note: review cut to 4096 characters x1" in result.output
    (row,) = _valid(tmp_path / "e.jsonl")
    assert row["ts"] == "2020-05-05T14:08:48.923Z"
    assert row["item_id"] == "P1" and row["domain"] == "books" and row["rating"] == 4
    text = str(row["text"])
    assert text.startswith("Solid. Does what it says.") and len(text) <= MAX_TEXT
    assert text.endswith("here.")  # cut at a sentence end


def test_amazon_items_need_metadata(tmp_path: Path):
    reviews = tmp_path / "r.jsonl"
    reviews.write_text(json.dumps(REVIEWS_2018[0]) + "\n", encoding="utf-8")
    result = CliRunner().invoke(
        main,
        ["convert", "amazon", str(reviews), "-o", str(tmp_path / "e"), "--items", "i.jsonl"],
    )
    assert result.exit_code == 2
    assert "--items needs --metadata" in result.output
