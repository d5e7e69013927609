"""Amazon Reviews in the event contract: the JSON-lines releases, one review a line.

Both field layouts in use are read, gzipped (`.gz`) or not:
- 2014/2018 (McAuley et al.): `reviewerID`, `asin`, `overall`, `reviewText`, `summary`,
  `unixReviewTime` (seconds);
- 2023 (Hou et al.): `user_id`, `asin`/`parent_asin`, `rating`, `text`, `title`,
  `timestamp` (milliseconds).

Each review becomes a review event: the text is the summary and the review's words ("Great
for travel. I used it on a two-week trip ..."), cut at a sentence end to the contract's
4,096 characters; the rating rides along; the item is `parent_asin` when given (what the
2023 metadata is keyed by), else `asin`; the event id is user-item-seconds. With a metadata
file (`meta_*.json[l][.gz]`; the 2014 files hold Python literals rather than JSON, read
too) the items file gets each reviewed item's title (and its category, when no --domain
is given, as its domain).

Memory: reviews are streamed and written one by one; what is kept is the set of user ids
(the user count) and the set of reviewed item ids (which metadata records to keep), both
bounded by the catalogue and the audience, not by the number of reviews. Skipped reviews
are counted by reason.
"""

from __future__ import annotations

import ast
import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from interest_stream.streams.errors import SourceError
from interest_stream.streams.lab.convert.output import Conversion, JsonLines, fit_text, rfc3339

# 2023 release: times in milliseconds; 2014/2018: seconds. A number above this is ms
# (1e11 seconds is the year 5138).
MILLISECONDS_FROM = 1e11


def _open(path: Path) -> IO[str]:
    try:
        if path.suffix == ".gz":
            return gzip.open(path, "rt", encoding="utf-8")
        return path.open(encoding="utf-8")
    except FileNotFoundError as exc:
        raise SourceError(f"{path}: no such file") from exc
    except OSError as exc:
        raise SourceError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _records(path: Path, done: Conversion | None) -> Iterator[dict[str, Any]]:
    """Objects of a JSON-lines file, streamed; lines that are not an object are counted
    (when `done` is given) and skipped. The 2014 metadata's Python literals are read too."""
    with _open(path) as handle:
        try:
            for line in handle:
                if not line.strip():
                    continue
                record: Any
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    try:
                        record = ast.literal_eval(line.strip())
                    except (ValueError, SyntaxError, MemoryError, RecursionError):
                        record = None
                if isinstance(record, dict):
                    yield record
                elif done is not None:
                    done.skip("not a JSON object")
        except (OSError, EOFError, UnicodeDecodeError) as exc:
            raise SourceError(f"cannot read {path}: {exc}") from exc


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def review_event(
    record: dict[str, Any], done: Conversion, domain: str | None
) -> dict[str, Any] | None:
    """One review as an event, or None (the reason counted in `done`)."""
    user = _text(record.get("reviewerID")) or _text(record.get("user_id"))
    item = _text(record.get("parent_asin")) or _text(record.get("asin"))
    if not user or not item:
        done.skip("no reviewer or item id")
        return None
    raw_time = record.get("unixReviewTime", record.get("timestamp"))
    if isinstance(raw_time, bool) or not isinstance(raw_time, int | float) or raw_time <= 0:
        done.skip("no review time")
        return None
    seconds = raw_time / 1000.0 if raw_time >= MILLISECONDS_FROM else float(raw_time)
    rating = record.get("overall", record.get("rating"))
    if rating is not None and (
        isinstance(rating, bool) or not isinstance(rating, int | float) or not 1 <= rating <= 5
    ):
        done.skip("rating outside 1..5")
        return None
    summary = _text(record.get("summary")) or _text(record.get("title"))
    words = _text(record.get("reviewText")) or _text(record.get("text"))
    joined = summary if not words else words if not summary else f"{summary}. {words}"
    text, cut = fit_text(joined.replace("<br />", " "))
    if not text:
        done.skip("no review text")
        return None
    if cut:
        done.adjusted["review cut to 4096 characters"] += 1
    event: dict[str, Any] = {
        "event_id": f"{user}-{item}-{int(seconds)}",
        "user_id": user,
        "ts": rfc3339(seconds),
        "type": "review",
        "text": text,
        "item_id": item,
    }
    if rating is not None:
        event["rating"] = int(rating) if float(rating).is_integer() else float(rating)
    if domain:
        event["domain"] = domain
    done.saw(user, seconds, None if rating is None else float(rating), "review")
    return event


def _category(record: dict[str, Any]) -> str | None:
    main = _text(record.get("main_category"))
    if main:
        return main.lower()
    for key in ("category", "categories"):
        value = record.get(key)
        while isinstance(value, list) and value:
            value = value[0]  # 2014: [["Books", ...]], 2018: ["Books", ...]
        if isinstance(value, str) and value.strip():
            return value.strip().lower()
    return None


def item_record(record: dict[str, Any], domain: str | None) -> dict[str, Any] | None:
    """A metadata record as an item (its title), or None when it has no title."""
    item = _text(record.get("parent_asin")) or _text(record.get("asin"))
    title, _ = fit_text(_text(record.get("title")))
    if not item or not title:
        return None
    out: dict[str, Any] = {"item_id": item, "text": title}
    chosen = domain or _category(record)
    if chosen:
        out["domain"] = chosen
    return out


def convert_amazon(
    reviews: Path,
    events_path: Path,
    *,
    metadata: Path | None = None,
    items_path: Path | None = None,
    domain: str | None = None,
) -> Conversion:
    """Write the reviews as events and, with metadata, the reviewed items' titles."""
    if items_path is not None and metadata is None:
        raise SourceError("--items needs --metadata (the item titles come from it)")
    done = Conversion()
    reviewed: set[str] = set()
    with JsonLines(events_path) as out:
        for record in _records(reviews, done):
            event = review_event(record, done, domain)
            if event is not None:
                out.write(event)
                reviewed.add(event["item_id"])
    if metadata is not None and items_path is not None:
        written: set[str] = set()
        with JsonLines(items_path) as catalogue:
            for record in _records(metadata, None):
                item = item_record(record, domain)
                if item and item["item_id"] in reviewed and item["item_id"] not in written:
                    catalogue.write(item)
                    written.add(item["item_id"])
        done.items = len(written)
        if len(written) < len(reviewed):
            done.adjusted["reviewed items without a title in the metadata"] = len(reviewed) - len(
                written
            )
    return done
