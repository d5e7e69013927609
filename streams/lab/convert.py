"""`convert`: turning someone else's log into the event contract, the way a user of
interest-stream does it with their own data. One format so far, MovieLens (`u.data`,
`u.item`, `u.genre`, as GroupLens distributes the 100K set).

Each rating becomes a review event: the text is what the user rated (the title and its
genres, e.g. "Toy Story (1995). Genres: Animation, Children's, Comedy"), the rating rides
along (1..5, so no text sentiment is needed), the first genre is the domain and the event id
is stable (user-item-seconds), so converting twice and publishing twice applies each rating
once. The catalogue goes to a separate items file (`publish --items`, `run --items`,
`evaluate --items`). Nothing of the input is kept in this repository: its terms forbid
redistribution, so the converter reads it from wherever the user keeps it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from interest_stream.streams.cli.output import console
from interest_stream.streams.errors import SourceError

# u.item and u.genre are ISO-8859-1 (titles such as "Misérables, Les (1995)").
MOVIELENS_ENCODING = "latin-1"


@dataclass(frozen=True)
class Movie:
    item_id: str
    title: str
    genres: tuple[str, ...]

    @property
    def text(self) -> str:
        """What is embedded: the title, then the genres (left out when none is known)."""
        return f"{self.title}. Genres: {', '.join(self.genres)}" if self.genres else self.title

    @property
    def domain(self) -> str | None:
        return self.genres[0].lower() if self.genres else None

    def item_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {"item_id": self.item_id, "text": self.text}
        if self.domain is not None:
            record["domain"] = self.domain
        return record


@dataclass(frozen=True)
class Rating:
    user_id: str
    item_id: str
    rating: int
    seconds: int


def _lines(path: Path, encoding: str) -> list[str]:
    try:
        return path.read_text(encoding=encoding).splitlines()
    except FileNotFoundError as exc:
        raise SourceError(f"{path}: no such file (is this a MovieLens 100K folder?)") from exc
    except OSError as exc:
        raise SourceError(f"cannot read {path}: {exc.strerror or exc}") from exc


def read_genres(folder: Path) -> list[str]:
    """Genre names in flag order, from u.genre ('name|index' lines)."""
    names: dict[int, str] = {}
    for number, line in enumerate(_lines(folder / "u.genre", MOVIELENS_ENCODING), 1):
        if not line.strip():
            continue
        name, _, index = line.rpartition("|")
        if not name or not index.strip().isdigit():
            raise SourceError(f"{folder / 'u.genre'}:{number}: expected 'name|index'")
        names[int(index)] = name.strip()
    return [names[i] for i in sorted(names)]


def read_movies(folder: Path, genres: Sequence[str]) -> dict[str, Movie]:
    """u.item: id | title | release | video release | URL | one 0/1 flag per genre."""
    movies: dict[str, Movie] = {}
    path = folder / "u.item"
    for number, line in enumerate(_lines(path, MOVIELENS_ENCODING), 1):
        if not line.strip():
            continue
        fields = line.split("|")
        flags = fields[5:]
        if len(fields) < 5 or len(flags) != len(genres):
            raise SourceError(
                f"{path}:{number}: expected 5 fields and {len(genres)} genre flags,"
                f" got {len(fields)} fields"
            )
        # "unknown" is the genre of movies nobody classified: it says nothing of the film.
        named = tuple(
            g
            for g, flag in zip(genres, flags, strict=True)
            if flag.strip() == "1" and g != "unknown"
        )
        movies[fields[0].strip()] = Movie(fields[0].strip(), fields[1].strip(), named)
    return movies


def read_ratings(folder: Path) -> Iterator[Rating]:
    """u.data: user id, item id, rating, unix seconds, tab-separated."""
    path = folder / "u.data"
    for number, line in enumerate(_lines(path, "ascii"), 1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            user, item, rating, seconds = parts[0], parts[1], int(parts[2]), int(parts[3])
        except (IndexError, ValueError) as exc:
            raise SourceError(f"{path}:{number}: expected user, item, rating, seconds") from exc
        yield Rating(user, item, rating, seconds)


def rating_event(rating: Rating, movie: Movie) -> dict[str, Any]:
    """One rating in the event contract. ts is written as RFC 3339: an integer ts means
    epoch *milliseconds*, and unix seconds written as-is would land in January 1970."""
    when = datetime.fromtimestamp(rating.seconds, tz=UTC).isoformat().replace("+00:00", "Z")
    event: dict[str, Any] = {
        "event_id": f"{rating.user_id}-{rating.item_id}-{rating.seconds}",
        "user_id": rating.user_id,
        "ts": when,
        "type": "review",
        "text": movie.text,
        "item_id": movie.item_id,
        "rating": rating.rating,
    }
    if movie.domain is not None:
        event["domain"] = movie.domain
    return event


@dataclass
class Conversion:
    events: int = 0
    users: int = 0
    items: int = 0
    first: int | None = None
    last: int | None = None
    ratings: Counter[int] | None = None


def convert_movielens(folder: Path, events_path: Path, items_path: Path | None) -> Conversion:
    """Write the ratings as events (in time order) and, optionally, the catalogue."""
    movies = read_movies(folder, read_genres(folder))
    ratings = sorted(read_ratings(folder), key=lambda r: (r.seconds, r.user_id, r.item_id))
    unknown = sorted({r.item_id for r in ratings if r.item_id not in movies})
    if unknown:
        raise SourceError(f"u.data names items missing from u.item: {', '.join(unknown[:5])}")
    events_path.parent.mkdir(parents=True, exist_ok=True)
    with events_path.open("w", encoding="utf-8") as out:
        for rating in ratings:
            out.write(json.dumps(rating_event(rating, movies[rating.item_id])) + "\n")
    if items_path is not None:
        items_path.parent.mkdir(parents=True, exist_ok=True)
        with items_path.open("w", encoding="utf-8") as out:
            for movie in movies.values():
                out.write(json.dumps(movie.item_record()) + "\n")
    return Conversion(
        events=len(ratings),
        users=len({r.user_id for r in ratings}),
        items=len(movies),
        first=ratings[0].seconds if ratings else None,
        last=ratings[-1].seconds if ratings else None,
        ratings=Counter(r.rating for r in ratings),
    )


@click.group()
def convert() -> None:
    """Convert other logs into the event contract (JSONL), ready for run, publish, evaluate."""


@convert.command("movielens")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Events JSONL to write: one review per rating, in time order.",
)
@click.option(
    "--items",
    "items_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the movie catalogue (item_id, text, domain) as items JSONL.",
)
def movielens(folder: Path, output: Path, items_path: Path | None) -> None:
    """MovieLens 100K (FOLDER with u.data, u.item, u.genre) into events and items.

    Each rating becomes a review: text "Title (year). Genres: A, B", the rating, the item id,
    the first genre as domain, ts in RFC 3339 (UTC), event id user-item-seconds. The
    MovieLens terms forbid redistributing the data: keep the output where the input is.
    """
    done = convert_movielens(folder, output, items_path)

    def day(seconds: int | None) -> str:
        return "-" if seconds is None else datetime.fromtimestamp(seconds, UTC).date().isoformat()

    shares = ", ".join(
        f"{stars}: {count / max(1, done.events):.1%}"
        for stars, count in sorted((done.ratings or Counter()).items())
    )
    console.print(
        f"wrote {done.events:,} events ({done.users:,} users, {day(done.first)} .."
        f" {day(done.last)}; ratings {shares}) to {escape(str(output))}"
        + (f", {done.items:,} items to {escape(str(items_path))}" if items_path else ""),
        highlight=False,
    )
