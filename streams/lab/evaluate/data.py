"""Reading an event log and an item catalogue, and encoding every text once (`Corpus`)."""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from interest_stream.encoders.base import Encoder
from interest_stream.schemas.events import (
    Event,
    ValidationRules,
    parse_event,
    parse_item,
    reason_kind,
)
from interest_stream.schemas.records import Provenance, Rejection
from interest_stream.streams.core.sentiment import SentimentScorer
from interest_stream.streams.errors import SourceError
from interest_stream.streams.lab.evaluate.config import ProgressFn, no_progress


@dataclass(frozen=True)
class EventLog:
    """Valid events of one input in (ts, event_id) order, first delivery of each id kept."""

    source: str
    events: tuple[Event, ...]
    records: int
    rejected: int
    reject_reasons: Mapping[str, int]
    duplicates: int
    # Clicks that carried no text and named an item whose text nothing supplied: dropped.
    unresolved: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "records": self.records,
            "valid": len(self.events),
            "rejected": self.rejected,
            "reject_reasons": dict(self.reject_reasons),
            "duplicates": self.duplicates,
            "unresolved_clicks": self.unresolved,
        }


def parse_records(
    lines: Iterable[bytes],
    source: str,
    *,
    rules: ValidationRules | None = None,
    now: float | None = None,
) -> EventLog:
    """Validate raw JSONL records; rejects are counted by kind, duplicates dropped by id."""
    rules = rules or ValidationRules()
    now = time.time() if now is None else now
    valid: dict[str, Event] = {}
    reasons: Counter[str] = Counter()
    records = duplicates = 0
    for offset, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        records += 1
        parsed = parse_event(raw.rstrip(b"\r\n"), Provenance(source, offset), now=now, rules=rules)
        if isinstance(parsed, Rejection):
            reasons[reason_kind(parsed.reason)] += 1
        elif parsed.event_id in valid:
            duplicates += 1
        else:
            valid[parsed.event_id] = parsed
    events = tuple(sorted(valid.values(), key=lambda e: (e.ts, e.event_id)))
    return EventLog(source, events, records, sum(reasons.values()), dict(reasons), duplicates)


def read_events(
    path: str | Path, *, rules: ValidationRules | None = None, now: float | None = None
) -> EventLog:
    """Read a JSONL file of events; an unreadable file is a SourceError (one line, exit 2)."""
    location = Path(path)
    try:
        with location.open("rb") as handle:
            return parse_records(handle, str(location), rules=rules, now=now)
    except FileNotFoundError as exc:
        raise SourceError(f"events file not found: {location}") from exc
    except OSError as exc:
        raise SourceError(f"cannot read events file {location}: {exc.strerror or exc}") from exc


def events_from_dicts(
    documents: Iterable[Mapping[str, Any]],
    source: str = "memory",
    *,
    rules: ValidationRules | None = None,
    now: float | None = None,
) -> EventLog:
    """The same validation for events held in memory (a generated workload, a test)."""
    lines = (json.dumps(d).encode() for d in documents)
    return parse_records(lines, source, rules=rules, now=now)


# ---------------------------------------------------------------------------------------
# Items and vectors


@dataclass(frozen=True)
class Corpus:
    """Every distinct text of the log encoded once, and the items to rank."""

    model_id: str
    text_vectors: npt.NDArray[np.float32]
    text_row: Mapping[str, int]
    item_ids: tuple[str, ...]
    item_row: Mapping[str, int]
    item_text_rows: npt.NDArray[np.int64]
    sentiment: Mapping[str, float]
    encode_seconds: float
    from_cache: bool

    @property
    def item_vectors(self) -> npt.NDArray[np.float32]:
        return self.text_vectors[self.item_text_rows]

    def vector(self, text: str) -> npt.NDArray[np.float32]:
        row: npt.NDArray[np.float32] = self.text_vectors[self.text_row[text]]
        return row


def read_items(path: str | Path) -> dict[str, str]:
    """An item catalogue in JSONL (the `items` topic's records): item_id -> text.

    Later records win and a record without text erases the item, as on the compacted
    topic; records that do not validate are skipped.
    """
    location = Path(path)
    titles: dict[str, str] = {}
    try:
        with location.open("rb") as handle:
            for offset, raw in enumerate(handle, 1):
                if not raw.strip():
                    continue
                item = parse_item(raw.rstrip(b"\r\n"), Provenance(str(location), offset))
                if isinstance(item, Rejection):
                    continue
                if item.text is None:
                    titles.pop(item.item_id, None)
                else:
                    titles[item.item_id] = item.text
    except FileNotFoundError as exc:
        raise SourceError(f"items file not found: {location}") from exc
    except OSError as exc:
        raise SourceError(f"cannot read items file {location}: {exc.strerror or exc}") from exc
    return titles


def item_texts(
    events: Sequence[Event], catalogue: Mapping[str, str] | None = None
) -> dict[str, str]:
    """item_id -> text of every item the events name.

    The catalogue's text wins; else a click's text (clicks carry the item's title, reviews
    only the reviewer's words), else the first text seen with the item. Items with no text
    anywhere are left out.
    """
    catalogue = catalogue or {}
    from_clicks: dict[str, str] = {}
    first_seen: dict[str, str] = {}
    named: set[str] = set()
    for event in events:
        if event.item_id is None:
            continue
        named.add(event.item_id)
        if event.text is None:
            continue
        first_seen.setdefault(event.item_id, event.text)
        if event.type == "click":
            from_clicks.setdefault(event.item_id, event.text)
    titles: dict[str, str] = {}
    for item in sorted(named):
        text = catalogue.get(item) or from_clicks.get(item) or first_seen.get(item)
        if text is not None:
            titles[item] = text
    return titles


def resolve_texts(log: EventLog, catalogue: Mapping[str, str] | None = None) -> EventLog:
    """Give text-less clicks their item's text, as the batch core does from its catalogue;
    clicks whose item has no known text cannot be embedded and are dropped (counted)."""
    if all(e.text is not None for e in log.events):
        return log
    titles = item_texts(log.events, catalogue)
    resolved: list[Event] = []
    for event in log.events:
        if event.text is None:
            text = titles.get(event.item_id or "")
            if text is None:
                continue
            event = replace(event, text=text)
        resolved.append(event)
    return replace(
        log, events=tuple(resolved), unresolved=log.unresolved + len(log.events) - len(resolved)
    )


def text_of(event: Event) -> str:
    """The text of an event after `resolve_texts` (which guarantees there is one)."""
    if event.text is None:
        raise ValueError(f"event {event.event_id} has no text; resolve_texts() first")
    return event.text


def _cache_file(cache_dir: Path, model_id: str, texts: Sequence[str]) -> Path:
    digest = hashlib.sha256("\x00".join(texts).encode("utf-8")).hexdigest()[:20]
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", model_id)
    return cache_dir / f"{slug}-{len(texts)}-{digest}.npy"


ENCODE_CHUNK = 1024


def encode_once(
    texts: Sequence[str],
    encoder: Encoder,
    cache_dir: Path | None = None,
    on_progress: ProgressFn = no_progress,
) -> tuple[npt.NDArray[np.float32], float, bool]:
    """Vectors of `texts`, from the on-disk cache when this model encoded this list before."""
    path = _cache_file(cache_dir, encoder.model_id, texts) if cache_dir else None
    if path is not None and path.exists():
        cached = np.load(path)
        if cached.shape == (len(texts), encoder.dim):
            on_progress("encoding", len(texts), len(texts))
            return cached.astype(np.float32, copy=False), 0.0, True
    started = time.perf_counter()
    # In chunks, so that a progress bar can follow; the encoder batches within each.
    vectors = np.empty((len(texts), encoder.dim), dtype=np.float32)
    on_progress("encoding", 0, len(texts))
    for start in range(0, len(texts), ENCODE_CHUNK):
        chunk = list(texts[start : start + ENCODE_CHUNK])
        vectors[start : start + len(chunk)] = encoder.encode(chunk)
        on_progress("encoding", start + len(chunk), len(texts))
    seconds = time.perf_counter() - started
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename: a killed run must not leave a truncated cache behind.
        partial = path.with_suffix(".partial.npy")
        np.save(partial, vectors)
        partial.replace(path)
    return vectors, seconds, False


def build_corpus(
    events: Sequence[Event],
    encoder: Encoder,
    cache_dir: Path | None = None,
    catalogue: Mapping[str, str] | None = None,
    on_progress: ProgressFn = no_progress,
) -> Corpus:
    """Encode every distinct event and item text once; score unrated reviews' sentiment."""
    titles = item_texts(events, catalogue)
    texts = sorted({text_of(e) for e in events} | set(titles.values()))
    vectors, seconds, from_cache = encode_once(texts, encoder, cache_dir, on_progress)
    row = {text: i for i, text in enumerate(texts)}
    unrated = sorted({text_of(e) for e in events if e.type == "review" and e.rating is None})
    sentiment: dict[str, float] = {}
    if unrated:
        scores = SentimentScorer(encoder).score_texts(unrated, vectors[[row[t] for t in unrated]])
        sentiment = dict(zip(unrated, (float(s) for s in scores), strict=True))
    item_ids = tuple(titles)
    return Corpus(
        model_id=encoder.model_id,
        text_vectors=vectors,
        text_row=row,
        item_ids=item_ids,
        item_row={item: i for i, item in enumerate(item_ids)},
        item_text_rows=np.array([row[titles[i]] for i in item_ids], dtype=np.int64),
        sentiment=sentiment,
        encode_seconds=seconds,
        from_cache=from_cache,
    )
