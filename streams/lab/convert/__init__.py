"""`convert`: turning someone else's log into the event contract, the way a user of
interest-stream does it with their own data: MovieLens (the 100K layout and the CSV
releases: latest, 25M, 32M) and Amazon Reviews (JSON lines, 2014/2018 and 2023 fields).

Every converter streams its input (see convert.output), writes events one per line and
says what it wrote and what it skipped. The catalogue goes to a separate items file
(`publish --items`, `run --items`, `evaluate --items`).
"""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape

from interest_stream.streams.cli.output import console
from interest_stream.streams.lab.convert.amazon import convert_amazon
from interest_stream.streams.lab.convert.movielens import convert_movielens, layout
from interest_stream.streams.lab.convert.output import Conversion

__all__ = ["convert", "convert_amazon", "convert_movielens"]


def _report(done: Conversion, output: Path, items_path: Path | None) -> None:
    def day(seconds: float | None) -> str:
        from datetime import UTC, datetime

        return "-" if seconds is None else datetime.fromtimestamp(seconds, UTC).date().isoformat()

    rated = sum(done.ratings.values())
    shares = ", ".join(
        f"{stars:g}: {count / max(1, rated):.1%}" for stars, count in sorted(done.ratings.items())
    )
    kinds = (
        ""
        if len(done.kinds) < 2
        else " ("
        + ", ".join(f"{count:,} {kind}s" for kind, count in sorted(done.kinds.items()))
        + ")"
    )
    console.print(
        f"wrote {done.events:,} events{kinds} ({len(done.users):,} users, {day(done.first)} .."
        f" {day(done.last)}; ratings {shares or 'none'}) to {escape(str(output))}"
        + (f", {done.items:,} items to {escape(str(items_path))}" if items_path else ""),
        highlight=False,
    )
    skipped = sum(done.skipped.values())
    reasons = ", ".join(f"{reason} x{n:,}" for reason, n in sorted(done.skipped.items()))
    console.print(f"skipped {skipped:,}" + (f": {reasons}" if reasons else ""), highlight=False)
    for what, n in sorted(done.adjusted.items()):
        console.print(f"note: {what} x{n:,}", highlight=False)


@click.group()
def convert() -> None:
    """Convert other logs into the event contract (JSONL), ready for run, publish, evaluate."""


output_option = click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Events JSONL to write, one event a line, in the input's order.",
)


@convert.command("movielens")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@output_option
@click.option(
    "--items",
    "items_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the movie catalogue (item_id, text, domain) as items JSONL.",
)
@click.option(
    "--tags/--no-tags",
    default=True,
    show_default=True,
    help="Convert tags.csv (CSV releases) into text-only reviews.",
)
def movielens(folder: Path, output: Path, items_path: Path | None, tags: bool) -> None:
    """MovieLens into events and items: FOLDER holds u.data, u.item, u.genre (100K) or
    ratings.csv, movies.csv and optionally tags.csv (latest, latest-small, 25M, 32M).

    Each rating becomes a review: text "Title (year). Genres: A, B", the rating (half a
    star becomes 1, the contract's lowest), the item id, the first genre as domain, ts in
    RFC 3339 (UTC), event id user-item-seconds. Each tag becomes a review with the tag as
    its text and no rating. Ratings and tags are streamed (a 25M log needs the memory of
    its catalogue and user ids, not of its rows). The MovieLens terms forbid
    redistributing the data: keep the output where the input is.
    """
    done = convert_movielens(folder, output, items_path, tags=tags)
    if layout(folder) == "100k" and (folder / "tags.csv").exists() and tags:
        console.print("note: tags.csv read beside the 100K layout", highlight=False)
    _report(done, output, items_path)


@convert.command("amazon")
@click.argument("reviews", type=click.Path(dir_okay=False, path_type=Path))
@output_option
@click.option(
    "--metadata",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The category's metadata file (meta_*.json[l][.gz]): item titles for --items.",
)
@click.option(
    "--items",
    "items_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the reviewed items' titles (from --metadata) as items JSONL.",
)
@click.option("--domain", help="Domain of every event, e.g. books [default: none].")
def amazon(
    reviews: Path,
    output: Path,
    metadata: Path | None,
    items_path: Path | None,
    domain: str | None,
) -> None:
    """Amazon Reviews JSON lines (REVIEWS, gzipped or not) into events and items.

    Reads the 2014/2018 fields (reviewerID, asin, overall, summary, reviewText,
    unixReviewTime) and the 2023 ones (user_id, parent_asin, rating, title, text,
    timestamp in ms). Each review becomes a review event: text "summary. review" (cut at a
    sentence end to 4,096 characters), the rating, the item, ts in RFC 3339, event id
    user-item-seconds. Streamed: memory grows with users and items, not with reviews.
    """
    done = convert_amazon(reviews, output, metadata=metadata, items_path=items_path, domain=domain)
    _report(done, output, items_path)
