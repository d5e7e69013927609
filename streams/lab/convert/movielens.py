"""MovieLens in the event contract, in both layouts GroupLens distributes.

- 100K: `u.data` (tab-separated user, item, rating, unix seconds), `u.item` (latin-1, one
  0/1 flag per genre), `u.genre`.
- CSV (ml-latest, ml-latest-small, 25M, 32M): `ratings.csv` (userId, movieId, rating in
  half stars, timestamp), `movies.csv` (movieId, title, genres joined by '|'), and
  `tags.csv` (userId, movieId, tag, timestamp) when present.

Each rating becomes a review event: the text is what the user rated (the title and its
genres, "Toy Story (1995). Genres: Animation, Children's, Comedy"), the rating rides along
(so no text sentiment is needed), the first genre is the domain and the event id is stable
(user-item-seconds), so converting twice and publishing twice applies each rating once.
Each tag becomes a text-only review (no rating): the text is the tag as the user wrote it,
its weight the sentiment the product reads from it (most tags are neutral and weigh ~0).

Memory: the catalogue (u.item or movies.csv: 1,682 to ~87,000 movies) is a dict; ratings
and tags are streamed line by line and written in the input's order (profiles do not
depend on event order; `evaluate` sorts by time itself). What is kept per row is only the
user id (for the user count). Rows that cannot be converted are skipped and counted by
reason, never fatal. Nothing of the input is kept in this repository: its terms forbid
redistribution, so the converter reads it from wherever the user keeps it.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from interest_stream.streams.errors import SourceError
from interest_stream.streams.lab.convert.output import Conversion, JsonLines, fit_text, rfc3339

# u.item and u.genre are ISO-8859-1 (titles such as "Misérables, Les (1995)").
MOVIELENS_ENCODING = "latin-1"
# The CSV releases write this instead of an empty genre list.
NO_GENRES = "(no genres listed)"
LOWEST_RATING = 1.0


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


def _lines(path: Path, encoding: str) -> list[str]:
    """A small catalogue file (u.item, u.genre) as lines."""
    try:
        return path.read_text(encoding=encoding).splitlines()
    except FileNotFoundError as exc:
        raise SourceError(
            f"{path}: no such file (is this a MovieLens folder, with u.data or ratings.csv?)"
        ) from exc
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


def _csv_rows(path: Path, columns: Sequence[str]) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of a CSV release file, streamed; the header is checked."""
    try:
        handle = path.open(encoding="utf-8", newline="")
    except FileNotFoundError as exc:
        raise SourceError(f"{path}: no such file") from exc
    except OSError as exc:
        raise SourceError(f"cannot read {path}: {exc.strerror or exc}") from exc
    with handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or [h.strip() for h in header[: len(columns)]] != list(columns):
            raise SourceError(f"{path}:1: expected the header {','.join(columns)}")
        for fields in reader:
            if fields:
                yield reader.line_num, fields


def read_movies_csv(folder: Path) -> dict[str, Movie]:
    """movies.csv: movieId,title,genres ('A|B', or '(no genres listed)')."""
    movies: dict[str, Movie] = {}
    path = folder / "movies.csv"
    for number, fields in _csv_rows(path, ("movieId", "title", "genres")):
        if len(fields) < 3 or not fields[0].strip() or not fields[1].strip():
            raise SourceError(f"{path}:{number}: expected movieId, title, genres")
        genres = tuple(g for g in fields[2].split("|") if g.strip() and g != NO_GENRES)
        movies[fields[0].strip()] = Movie(fields[0].strip(), fields[1].strip(), genres)
    return movies


@dataclass(frozen=True)
class Rating:
    user_id: str
    item_id: str
    rating: float
    seconds: int


def read_ratings(folder: Path, done: Conversion) -> Iterator[Rating]:
    """u.data lines, streamed; malformed lines are skipped and counted."""
    path = folder / "u.data"
    try:
        handle = path.open(encoding="ascii", errors="replace")
    except OSError as exc:
        raise SourceError(f"cannot read {path}: {exc.strerror or exc}") from exc
    with handle:
        for line in handle:
            parts = line.split()
            if not parts:
                continue
            try:
                yield Rating(parts[0], parts[1], float(parts[2]), int(parts[3]))
            except (IndexError, ValueError):
                done.skip("malformed line")


def read_ratings_csv(folder: Path, done: Conversion) -> Iterator[Rating]:
    """ratings.csv rows, streamed; malformed rows are skipped and counted."""
    for _, fields in _csv_rows(folder / "ratings.csv", ("userId", "movieId", "rating")):
        try:
            yield Rating(fields[0].strip(), fields[1].strip(), float(fields[2]), int(fields[3]))
        except (IndexError, ValueError):
            done.skip("malformed line")


def rating_event(rating: Rating, movie: Movie) -> dict[str, Any]:
    """One rating in the event contract (ts as RFC 3339, see convert.output)."""
    stars: float | int = int(rating.rating) if rating.rating.is_integer() else rating.rating
    event: dict[str, Any] = {
        "event_id": f"{rating.user_id}-{rating.item_id}-{rating.seconds}",
        "user_id": rating.user_id,
        "ts": rfc3339(rating.seconds),
        "type": "review",
        "text": movie.text,
        "item_id": movie.item_id,
        "rating": stars,
    }
    if movie.domain is not None:
        event["domain"] = movie.domain
    return event


def tag_event(user_id: str, movie: Movie, tag: str, seconds: int) -> dict[str, Any]:
    """A tag as a text-only review of the movie: no rating, the text is the tag."""
    digest = hashlib.sha1(tag.encode("utf-8")).hexdigest()[:10]
    event: dict[str, Any] = {
        "event_id": f"{user_id}-{movie.item_id}-{seconds}-tag-{digest}",
        "user_id": user_id,
        "ts": rfc3339(seconds),
        "type": "review",
        "text": tag,
        "item_id": movie.item_id,
    }
    if movie.domain is not None:
        event["domain"] = movie.domain
    return event


def _write_ratings(
    ratings: Iterator[Rating], movies: Mapping[str, Movie], out: JsonLines, done: Conversion
) -> None:
    for rating in ratings:
        movie = movies.get(rating.item_id)
        if movie is None:
            done.skip("movie not in the catalogue")
            continue
        if not 0 < rating.rating <= 5:
            done.skip("rating outside 0.5..5")
            continue
        if rating.rating < LOWEST_RATING:
            # Half a star (the CSV releases' lowest) is the contract's lowest, 1.
            done.adjusted["rating 0.5 written as 1"] += 1
            rating = Rating(rating.user_id, rating.item_id, LOWEST_RATING, rating.seconds)
        out.write(rating_event(rating, movie))
        done.saw(rating.user_id, rating.seconds, rating.rating, "rating")


def _write_tags(
    folder: Path, movies: Mapping[str, Movie], out: JsonLines, done: Conversion
) -> None:
    for _, fields in _csv_rows(folder / "tags.csv", ("userId", "movieId", "tag")):
        try:
            user_id, item_id, raw, seconds = fields[0], fields[1], fields[2], int(fields[3])
        except (IndexError, ValueError):
            done.skip("malformed tag line")
            continue
        movie = movies.get(item_id.strip())
        tag, cut = fit_text(raw)
        if movie is None:
            done.skip("tag on a movie not in the catalogue")
        elif not tag:
            done.skip("empty tag")
        else:
            if cut:
                done.adjusted["tag cut to 4096 characters"] += 1
            out.write(tag_event(user_id.strip(), movie, tag, seconds))
            done.saw(user_id.strip(), seconds, None, "tag")


def layout(folder: Path) -> str:
    """'csv' when the folder holds ratings.csv (latest, 25M, 32M), else '100k'."""
    return "csv" if (folder / "ratings.csv").exists() else "100k"


def convert_movielens(
    folder: Path, events_path: Path, items_path: Path | None, *, tags: bool = True
) -> Conversion:
    """Write the ratings (and tags) as events and, optionally, the catalogue as items."""
    done = Conversion()
    if layout(folder) == "csv":
        movies = read_movies_csv(folder)
        ratings = read_ratings_csv(folder, done)
    else:
        movies = read_movies(folder, read_genres(folder))
        ratings = read_ratings(folder, done)
    with JsonLines(events_path) as out:
        _write_ratings(ratings, movies, out, done)
        if tags and (folder / "tags.csv").exists():
            _write_tags(folder, movies, out, done)
    if items_path is not None:
        with JsonLines(items_path) as catalogue:
            for movie in movies.values():
                catalogue.write(movie.item_record())
    done.items = len(movies)
    return done
