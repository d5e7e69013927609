"""Offline evaluation: do the profiles recommend what each user goes on to like?

Any event log in the event contract is validated with `parse_event`, split per user by time
(the last fraction of each user's positive events is held out), and every user's profile is
rebuilt from the events before that user's cut with the product's own pure functions
(`event_weight`, `SentimentScorer`, `fold_events`, `InterestState.fold`, `seed_ema`): this
module adds ranking and metrics, never a second copy of the interest math. All items are
ranked for every user with one matrix product per strategy (item vectors are encoded once),
items the user touched before the cut are excluded, and Recall@K, NDCG@K and MRR are reported
with bootstrap confidence intervals over users. Blend weights and the `--grid` sweep are
chosen on a validation split (the held-out fraction just before the test fraction), so the
test figures are never tuned on.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from encoders.base import Encoder
from schemas.events import Event, Rejection, ValidationRules, parse_event, parse_item
from streams.errors import ConfigurationError, SourceError
from streams.interest import (
    DAY,
    HOUR,
    InterestParams,
    InterestState,
    event_weight,
    rating_sentiment,
    seed_ema,
)
from streams.profile import UserProfile, WeightedEvent, fold_events
from streams.sentiment import SentimentScorer

FloatMatrix = npt.NDArray[np.float64]

STRATEGIES: tuple[str, ...] = (
    "decay",
    "clusters",
    "seed-ema",
    "mean",
    "last",
    "popular",
    "decay+popular",
    "mean+popular",
)
BLENDS: Mapping[str, str] = {"decay+popular": "decay", "mean+popular": "mean"}
LIFTS: tuple[tuple[str, str], ...] = (
    ("decay+popular", "popular"),
    ("decay+popular", "mean+popular"),
    ("decay", "mean"),
)

GRID_SHORT_HALF_LIVES = (1 * HOUR, 6 * HOUR, 24 * HOUR, 3 * DAY)
GRID_LONG_HALF_LIVES = (7 * DAY, 30 * DAY, 90 * DAY)
GRID_TYPE_WEIGHTS: Mapping[str, Mapping[str, float]] = {
    "default 1/0.5/1.5": {"click": 1.0, "query": 0.5, "review": 1.5},
    "equal 1/1/1": {"click": 1.0, "query": 1.0, "review": 1.0},
    "no queries 1/0/1.5": {"click": 1.0, "query": 0.0, "review": 1.5},
    "clicks only 1/0/0": {"click": 1.0, "query": 0.0, "review": 0.0},
}

# Users scored per matrix product: bounds memory at chunk x items x 8 bytes per strategy.
USER_CHUNK = 128


@dataclass(frozen=True)
class EvalConfig:
    """How to split, which strategies to rank with, and how to report."""

    holdout_fraction: float = 0.2
    ks: tuple[int, ...] = (10, 20, 50)
    strategies: tuple[str, ...] = STRATEGIES
    positive_rating: float = 4.0
    min_history: int = 3
    short_weight: float = 0.5
    ema_keep: float = 0.9
    betas: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
    bootstrap: int = 1000
    seed: int = 0
    params: InterestParams = field(default_factory=InterestParams)

    def __post_init__(self) -> None:
        if not 0.0 < self.holdout_fraction < 1.0:
            raise ConfigurationError(
                f"holdout fraction must be in (0, 1), got {self.holdout_fraction}"
            )
        if not self.ks or any(k < 1 for k in self.ks):
            raise ConfigurationError(f"every K must be a positive integer, got {self.ks}")
        unknown = [s for s in self.strategies if s not in STRATEGIES]
        if unknown or not self.strategies:
            raise ConfigurationError(
                f"unknown strategies {unknown}: choose from {', '.join(STRATEGIES)}"
            )
        if not 1.0 <= self.positive_rating <= 5.0:
            raise ConfigurationError("positive rating threshold must be in 1..5")
        if self.min_history < 1:
            raise ConfigurationError("min history must be >= 1 positive event")
        if not 0.0 <= self.short_weight <= 1.0 or not 0.0 <= self.ema_keep < 1.0:
            raise ConfigurationError("short weight must be in [0, 1] and EMA keep in [0, 1)")
        if self.bootstrap < 10:
            raise ConfigurationError("bootstrap needs at least 10 resamples")

    @property
    def primary_k(self) -> int:
        """The K that blend weights and the grid are chosen on (NDCG@K)."""
        return self.ks[0]


def parse_ks(text: str) -> tuple[int, ...]:
    """'10,20,50' -> (10, 20, 50); a ConfigurationError names what was wrong."""
    try:
        ks = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError as exc:
        raise ConfigurationError(f"--k must be comma-separated integers, got {text!r}") from exc
    if not ks or ks[0] < 1:
        raise ConfigurationError(f"--k must be positive integers, got {text!r}")
    return ks


def parse_strategies(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [n for n in names if n not in STRATEGIES]
    if unknown or not names:
        raise ConfigurationError(
            f"unknown strategies {unknown or text!r}: choose from {', '.join(STRATEGIES)}"
        )
    return names


# ---------------------------------------------------------------------------------------
# Reading events


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


def _reason_kind(reason: str) -> str:
    # "field 'ts': 512 s in the future ... (got ...)" -> "field 'ts'": counts stay readable.
    return reason.split(":", 1)[0][:60]


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
        parsed = parse_event(
            raw.rstrip(b"\r\n"), source=source, offset=offset, now=now, rules=rules
        )
        if isinstance(parsed, Rejection):
            reasons[_reason_kind(parsed.reason)] += 1
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
                item = parse_item(raw.rstrip(b"\r\n"), source=str(location), offset=offset)
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


def encode_once(
    texts: Sequence[str], encoder: Encoder, cache_dir: Path | None = None
) -> tuple[npt.NDArray[np.float32], float, bool]:
    """Vectors of `texts`, from the on-disk cache when this model encoded this list before."""
    path = _cache_file(cache_dir, encoder.model_id, texts) if cache_dir else None
    if path is not None and path.exists():
        cached = np.load(path)
        if cached.shape == (len(texts), encoder.dim):
            return cached.astype(np.float32, copy=False), 0.0, True
    started = time.perf_counter()
    vectors = np.asarray(encoder.encode(list(texts)), dtype=np.float32)
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
) -> Corpus:
    """Encode every distinct event and item text once; score unrated reviews' sentiment."""
    titles = item_texts(events, catalogue)
    texts = sorted({text_of(e) for e in events} | set(titles.values()))
    vectors, seconds, from_cache = encode_once(texts, encoder, cache_dir)
    row = {text: i for i, text in enumerate(texts)}
    unrated = sorted({text_of(e) for e in events if e.type == "review" and e.rating is None})
    sentiment: dict[str, float] = {}
    if unrated:
        scores = SentimentScorer(encoder).score(vectors[[row[t] for t in unrated]])
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


# ---------------------------------------------------------------------------------------
# Labels, weights and the per-user split


def is_positive(event: Event, sentiment: Mapping[str, float], threshold: float) -> bool:
    """A click, or a review at/above the rating threshold, on an item.

    An unrated review counts when its text sentiment reaches the sentiment the threshold
    rating maps to (4 -> +0.5), the same mapping the profile weights use.
    """
    if event.item_id is None:
        return False
    if event.type == "click":
        return True
    if event.type != "review":
        return False
    if event.rating is not None:
        return event.rating >= threshold
    return sentiment.get(text_of(event), 0.0) >= rating_sentiment(threshold)


def weigh(event: Event, params: InterestParams, sentiment: Mapping[str, float]) -> float:
    """The product's weight for an event: type weight times rating or text sentiment."""
    return event_weight(
        event.type, params, rating=event.rating, text_sentiment=sentiment.get(text_of(event))
    )


@dataclass(frozen=True)
class UserSplit:
    """One user's history before the cut and the new items they liked from the cut on."""

    user_id: str
    cut: float
    history: tuple[Event, ...]
    targets: tuple[str, ...]
    seen: frozenset[str]


def split_user(
    events: Sequence[Event],
    fraction: float,
    positive: Callable[[Event], bool],
    min_history: int,
) -> UserSplit | str:
    """Hold out the last `fraction` of a user's positive events (at least one).

    The cut is the time of the first held-out positive; the history is everything strictly
    before it (all types, negatives included), so nothing at or after the cut can leak into
    a profile. Targets are the held-out items not touched before the cut. Returns the reason
    as a string when the user cannot be evaluated.
    """
    ordered = sorted(events, key=lambda e: (e.ts, e.event_id))
    positives = [e for e in ordered if positive(e)]
    held = max(1, round(fraction * len(positives)))
    if len(positives) - held < min_history:
        return "too few positive events"
    cut = positives[len(positives) - held].ts
    history = tuple(e for e in ordered if e.ts < cut)
    if sum(1 for e in history if positive(e)) < min_history:
        return "too few positive events"
    seen = frozenset(e.item_id for e in history if e.item_id is not None)
    targets = tuple(
        dict.fromkeys(
            e.item_id
            for e in ordered
            if e.ts >= cut and positive(e) and e.item_id is not None and e.item_id not in seen
        )
    )
    if not targets:
        return "no new item held out"
    return UserSplit(ordered[0].user_id, cut, history, targets, seen)


def split_users(
    by_user: Mapping[str, Sequence[Event]],
    fraction: float,
    positive: Callable[[Event], bool],
    min_history: int,
) -> tuple[list[UserSplit], dict[str, int]]:
    """Splits of every user that can be evaluated (by cut time), and why others were not."""
    splits: list[UserSplit] = []
    skipped: Counter[str] = Counter()
    for user_id in sorted(by_user):
        result = split_user(by_user[user_id], fraction, positive, min_history)
        if isinstance(result, str):
            skipped[result] += 1
        else:
            splits.append(result)
    splits.sort(key=lambda s: (s.cut, s.user_id))
    return splits, dict(skipped)


def validation_splits(
    splits: Sequence[UserSplit],
    fraction: float,
    positive: Callable[[Event], bool],
    min_history: int,
) -> list[UserSplit]:
    """The same split applied to each test history: the fraction just before the test one."""
    histories = {s.user_id: s.history for s in splits}
    return split_users(histories, fraction, positive, min_history)[0]


# ---------------------------------------------------------------------------------------
# Profiles: the product's functions on each user's history


def weighted_events(
    history: Sequence[Event], corpus: Corpus, params: InterestParams
) -> list[WeightedEvent]:
    return [
        WeightedEvent(
            event_id=e.event_id,
            ts=e.ts,
            weight=weigh(e, params, corpus.sentiment),
            text=text_of(e),
            vector=corpus.vector(text_of(e)),
            domain=e.domain,
        )
        for e in history
    ]


def fold_history(history: Sequence[Event], corpus: Corpus, params: InterestParams) -> UserProfile:
    """The profile the product would hold after exactly these events (`fold_events`)."""
    dim = corpus.text_vectors.shape[1]
    empty = UserProfile.new(history[0].user_id, corpus.model_id, dim)
    updated_at = max(e.ts for e in history)
    events = weighted_events(history, corpus, params)
    return fold_events(empty, events, params, updated_at=updated_at).profile


def fold_horizons(
    history: Sequence[Event], corpus: Corpus, params: InterestParams
) -> InterestState:
    """Only the two horizons (what `fold_events` folds first), without rebuilding clusters:
    the grid and the validation split need nothing else, and clustering dominates the cost."""
    dim = corpus.text_vectors.shape[1]
    vectors = corpus.text_vectors[[corpus.text_row[text_of(e)] for e in history]]
    times = np.array([e.ts for e in history], dtype=np.float64)
    weights = np.array([weigh(e, params, corpus.sentiment) for e in history], dtype=np.float64)
    return InterestState.empty(dim).fold(vectors, times, weights, params)


def _unit(vector: npt.NDArray[np.floating] | None, dim: int) -> FloatMatrix:
    if vector is None:
        return np.zeros(dim)
    norm = float(np.linalg.norm(vector))
    return np.asarray(vector, dtype=np.float64) / norm if norm > 1e-12 else np.zeros(dim)


@dataclass(frozen=True)
class UserVectors:
    """Per strategy, one unit row per user (zeros where a strategy has no profile)."""

    long: FloatMatrix
    short: FloatMatrix
    mean: FloatMatrix
    ema: FloatMatrix
    last: FloatMatrix
    centroids: FloatMatrix
    centroid_owner: npt.NDArray[np.int64]


def user_vectors(
    splits: Sequence[UserSplit],
    corpus: Corpus,
    config: EvalConfig,
    *,
    params: InterestParams | None = None,
    with_clusters: bool = True,
) -> UserVectors:
    """Profiles at each user's cut: decayed horizons (short falls back to long once it has
    decayed to nothing), clusters, and the baselines' profiles, from the same history."""
    params = params or config.params
    dim = corpus.text_vectors.shape[1]
    rows: dict[str, list[FloatMatrix]] = defaultdict(list)
    centroids: list[FloatMatrix] = []
    owners: list[int] = []
    positive = _positive_rule(corpus, config)
    for index, split in enumerate(splits):
        if with_clusters:
            profile = fold_history(split.history, corpus, params)
            state = profile.state
            for cluster in profile.clusters:
                centroids.append(np.asarray(cluster.centroid, dtype=np.float64))
                owners.append(index)
        else:
            state = fold_horizons(split.history, corpus, params)
        # Read both horizons at the cut, as a ranker would "now": a short-term profile whose
        # events are many half-lives old has decayed away and must not steer the ranking.
        long = state.long.decayed_to(split.cut, params.long_decay).profile()
        short = state.short.decayed_to(split.cut, params.short_decay).profile()
        rows["long"].append(_unit(long, dim))
        rows["short"].append(_unit(short if short is not None else long, dim))
        liked = [
            corpus.vector(text_of(e))
            for e in split.history
            if weigh(e, params, corpus.sentiment) > 0
        ]
        mean = np.mean(np.stack(liked), axis=0) if liked else None
        rows["mean"].append(_unit(mean, dim))
        rows["ema"].append(_unit(seed_ema(liked, config.ema_keep), dim))
        # A positive event always names an item (see is_positive).
        last_item = next(e.item_id or "" for e in reversed(split.history) if positive(e))
        rows["last"].append(
            _unit(corpus.text_vectors[corpus.item_text_rows[corpus.item_row[last_item]]], dim)
        )

    def stack(name: str) -> FloatMatrix:
        return np.stack(rows[name]) if rows[name] else np.zeros((0, dim))

    return UserVectors(
        long=stack("long"),
        short=stack("short"),
        mean=stack("mean"),
        ema=stack("ema"),
        last=stack("last"),
        centroids=np.stack(centroids) if centroids else np.zeros((0, dim)),
        centroid_owner=np.array(owners, dtype=np.int64),
    )


def _positive_rule(corpus: Corpus, config: EvalConfig) -> Callable[[Event], bool]:
    def rule(event: Event) -> bool:
        return is_positive(event, corpus.sentiment, config.positive_rating)

    return rule


# ---------------------------------------------------------------------------------------
# Ranking


class Popularity:
    """Counts of positive interactions per item strictly before a time, read in time order."""

    def __init__(self, times: npt.NDArray[np.float64], items: npt.NDArray[np.int64], n: int):
        order = np.argsort(times, kind="stable")
        self._times = times[order]
        self._items = items[order]
        self._counts = np.zeros(n, dtype=np.float64)
        self._done = 0

    @classmethod
    def of(cls, events: Sequence[Event], corpus: Corpus, config: EvalConfig) -> Popularity:
        positive = _positive_rule(corpus, config)
        liked = [e for e in events if positive(e) and e.item_id in corpus.item_row]
        times = np.array([e.ts for e in liked], dtype=np.float64)
        items = np.array([corpus.item_row[e.item_id or ""] for e in liked], dtype=np.int64)
        return cls(times, items, len(corpus.item_ids))

    def before(self, t: float) -> FloatMatrix:
        """Counts before `t`; calls must come in non-decreasing t (users sorted by cut)."""
        end = int(np.searchsorted(self._times, t, side="left"))
        if end < self._done:
            raise ValueError("popularity must be read in time order")
        np.add.at(self._counts, self._items[self._done : end], 1.0)
        self._done = end
        return self._counts.copy()


def _ranks(
    scores: FloatMatrix,
    rows: npt.NDArray[np.int64],
    items: npt.NDArray[np.int64],
    tie_order: npt.NDArray[np.int64],
) -> FloatMatrix:
    """1-based rank of item `items[j]` in score row `rows[j]`, among all items.

    Ties are broken by a fixed random order of the items, so a strategy that scores many
    items alike (popularity counts) is neither helped nor hurt by catalogue order.
    """
    candidate = scores[rows]
    own = candidate[np.arange(len(rows)), items][:, None]
    above = (candidate > own).sum(axis=1)
    tied = candidate == own
    ties = tied.sum(axis=1) > 1
    if ties.any():
        earlier = tied[ties] & (tie_order[None, :] < tie_order[items[ties]][:, None])
        above[ties] += earlier.sum(axis=1)
    ranks: FloatMatrix = (1.0 + above).astype(np.float64)
    return ranks


@dataclass
class Chunk:
    """The users being scored together: their rows, popularity at their cuts, and each base
    strategy's scores once computed (blends reuse them for every beta)."""

    rows: slice
    popularity: FloatMatrix
    memo: dict[str, FloatMatrix] = field(default_factory=dict)


@dataclass(frozen=True)
class Scorer:
    """One strategy's scores for a chunk of users: (chunk, items)."""

    name: str
    score: Callable[[Chunk], FloatMatrix]


def make_scorers(
    names: Sequence[str],
    vectors: UserVectors,
    items: npt.NDArray[np.float32],
    config: EvalConfig,
    betas: Mapping[str, float],
) -> list[Scorer]:
    """Score functions of the named strategies; blends named 'decay+popular@2' use beta 2."""
    item_matrix = np.ascontiguousarray(items, dtype=np.float32)
    alpha = config.short_weight

    def cos(matrix: FloatMatrix, rows: slice) -> FloatMatrix:
        return (matrix[rows].astype(np.float32) @ item_matrix.T).astype(np.float64)

    def decay(chunk: Chunk) -> FloatMatrix:
        # Two horizons as one score: a weighted sum of the cosines to the short- and the
        # long-term profile (alpha = short weight); the short term stands in for what the
        # user is doing this week, the long term for everything they come back to.
        return (1.0 - alpha) * cos(vectors.long, chunk.rows) + alpha * cos(
            vectors.short, chunk.rows
        )

    def clusters(chunk: Chunk) -> FloatMatrix:
        rows = chunk.rows
        out = np.full((rows.stop - rows.start, len(item_matrix)), -1.0)
        owner = vectors.centroid_owner
        mask = (owner >= rows.start) & (owner < rows.stop)
        if mask.any():
            sims = (vectors.centroids[mask].astype(np.float32) @ item_matrix.T).astype(np.float64)
            np.maximum.at(out, owner[mask] - rows.start, sims)
        return out

    base: dict[str, Callable[[Chunk], FloatMatrix]] = {
        "decay": decay,
        "clusters": clusters,
        "seed-ema": lambda chunk: cos(vectors.ema, chunk.rows),
        "mean": lambda chunk: cos(vectors.mean, chunk.rows),
        "last": lambda chunk: cos(vectors.last, chunk.rows),
        "popular": lambda chunk: np.log1p(chunk.popularity),
    }

    def memoized(strategy: str, chunk: Chunk) -> FloatMatrix:
        if strategy not in chunk.memo:
            chunk.memo[strategy] = base[strategy](chunk)
        return chunk.memo[strategy]

    def single(strategy: str) -> Callable[[Chunk], FloatMatrix]:
        return lambda chunk: memoized(strategy, chunk).copy()

    def blend(profile: str, beta: float) -> Callable[[Chunk], FloatMatrix]:
        # log-popularity prior plus beta times the profile's score: the profile picks the
        # user's topics, popularity orders items the profile scores nearly alike.
        def score(chunk: Chunk) -> FloatMatrix:
            return memoized("popular", chunk) + beta * memoized(profile, chunk)

        return score

    scorers = []
    for name in names:
        strategy, _, given = name.partition("@")
        if strategy in BLENDS:
            beta = float(given) if given else betas[strategy]
            scorers.append(Scorer(name, blend(BLENDS[strategy], beta)))
        else:
            scorers.append(Scorer(name, single(strategy)))
    return scorers


def rank_targets(
    splits: Sequence[UserSplit],
    corpus: Corpus,
    scorers: Sequence[Scorer],
    popularity: Popularity,
    tie_order: npt.NDArray[np.int64],
) -> dict[str, FloatMatrix]:
    """Ranks of each user's targets under every scorer: (users, max targets), inf padded.

    `splits` must be in cut order (popularity is accumulated forward in time).
    """
    width = max((len(s.targets) for s in splits), default=1)
    ranks = {s.name: np.full((len(splits), width), np.inf) for s in scorers}
    for start in range(0, len(splits), USER_CHUNK):
        members = splits[start : start + USER_CHUNK]
        chunk = Chunk(
            slice(start, start + len(members)),
            np.stack([popularity.before(s.cut) for s in members]),
        )
        target_rows = np.array(
            [r for r, s in enumerate(members) for _ in s.targets], dtype=np.int64
        )
        target_cols = np.array([j for s in members for j in range(len(s.targets))], dtype=np.int64)
        target_items = np.array(
            [corpus.item_row[t] for s in members for t in s.targets], dtype=np.int64
        )
        seen_rows = [r for r, s in enumerate(members) for i in s.seen if i in corpus.item_row]
        seen_items = [corpus.item_row[i] for s in members for i in s.seen if i in corpus.item_row]
        for scorer in scorers:
            scores = scorer.score(chunk)
            # Items the user already touched are never recommended again.
            scores[seen_rows, seen_items] = -np.inf
            found = _ranks(scores, target_rows, target_items, tie_order)
            ranks[scorer.name][start + target_rows, target_cols] = found
    return ranks


# ---------------------------------------------------------------------------------------
# Metrics


def per_user_metrics(ranks: FloatMatrix, ks: Sequence[int]) -> dict[str, FloatMatrix]:
    """Recall@K, NDCG@K (binary relevance) and MRR per user from target ranks (inf = pad).

    Recall@K = hits in the top K / targets; NDCG@K = Σ_hits 1/log2(rank+1) over the ideal
    Σ_{i<=min(targets,K)} 1/log2(i+1); MRR = 1 / rank of the best-ranked target.
    """
    n_targets = np.isfinite(ranks).sum(axis=1)
    if (n_targets == 0).any():
        raise ValueError("every user needs at least one target")
    gains = np.where(
        np.isfinite(ranks), 1.0 / np.log2(np.where(np.isfinite(ranks), ranks, 1) + 1), 0
    )
    out: dict[str, FloatMatrix] = {}
    for k in ks:
        hit = ranks <= k
        out[f"recall@{k}"] = hit.sum(axis=1) / n_targets
        ideal = np.array([np.sum(1.0 / np.log2(np.arange(2, min(n, k) + 2))) for n in n_targets])
        out[f"ndcg@{k}"] = np.where(hit, gains, 0.0).sum(axis=1) / ideal
    out["mrr"] = 1.0 / ranks.min(axis=1)
    return out


@dataclass(frozen=True)
class Estimate:
    """A mean over users with a percentile bootstrap 95% interval."""

    mean: float
    low: float
    high: float

    def as_dict(self) -> dict[str, Any]:
        return {"mean": round(self.mean, 5), "ci95": [round(self.low, 5), round(self.high, 5)]}


def bootstrap_indices(n: int, resamples: int, seed: int) -> npt.NDArray[np.int64]:
    """Shared resamples of users: the same draws for every strategy make lifts paired."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, n, size=(resamples, n))


def estimate(values: FloatMatrix, draws: npt.NDArray[np.int64]) -> Estimate:
    means = values[draws].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return Estimate(float(values.mean()), float(low), float(high))


def lift(a: FloatMatrix, b: FloatMatrix, draws: npt.NDArray[np.int64]) -> Estimate:
    """Relative lift mean(a)/mean(b) - 1 with a paired bootstrap interval."""
    ma, mb = a[draws].mean(axis=1), b[draws].mean(axis=1)
    ratios = np.where(mb > 0, ma / np.where(mb > 0, mb, 1.0) - 1.0, np.nan)
    low, high = np.nanpercentile(ratios, [2.5, 97.5])
    base = float(b.mean())
    point = float(a.mean()) / base - 1.0 if base > 0 else math.nan
    return Estimate(point, float(low), float(high))


# ---------------------------------------------------------------------------------------
# The whole evaluation


@dataclass(frozen=True)
class StrategyResult:
    name: str
    metrics: Mapping[str, Estimate]
    beta: float | None = None

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {k: v.as_dict() for k, v in self.metrics.items()}
        if self.beta is not None:
            data["beta"] = self.beta
        return data


@dataclass(frozen=True)
class GridResult:
    """Half-lives and type weights ranked on validation NDCG of `decay`."""

    metric: str
    rows: tuple[dict[str, Any], ...]
    best: dict[str, Any]
    test_best: Mapping[str, Estimate]
    test_default: Mapping[str, Estimate]

    def as_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "best_on_validation": self.best,
            "test_with_best": {k: v.as_dict() for k, v in self.test_best.items()},
            "test_with_default": {k: v.as_dict() for k, v in self.test_default.items()},
            "settings": list(self.rows),
        }


@dataclass(frozen=True)
class EvaluationReport:
    log: EventLog
    model_id: str
    items: int
    users: Mapping[str, Any]
    config: EvalConfig
    strategies: tuple[StrategyResult, ...]
    lifts: Mapping[str, Mapping[str, Estimate]]
    betas: Mapping[str, Any]
    timings: Mapping[str, float]
    grid: GridResult | None = None

    def result(self, name: str) -> StrategyResult:
        return next(s for s in self.strategies if s.name == name)

    def as_dict(self) -> dict[str, Any]:
        params = self.config.params
        return {
            "input": self.log.as_dict(),
            "model_id": self.model_id,
            "items": self.items,
            "users": dict(self.users),
            "config": {
                "holdout_fraction": self.config.holdout_fraction,
                "ks": list(self.config.ks),
                "positive_rating": self.config.positive_rating,
                "min_history": self.config.min_history,
                "short_weight": self.config.short_weight,
                "ema_keep": self.config.ema_keep,
                "short_half_life_s": params.short_half_life_s,
                "long_half_life_s": params.long_half_life_s,
                "type_weights": dict(params.type_weights),
                "bootstrap": self.config.bootstrap,
                "decay_score": "(1 - short_weight) * cos(long) + short_weight * cos(short)",
                "blend_score": "log(1 + popularity) + beta * profile score",
            },
            "strategies": {s.name: s.as_dict() for s in self.strategies},
            "lifts": {
                name: {k: v.as_dict() for k, v in values.items()}
                for name, values in self.lifts.items()
            },
            "beta_selection": dict(self.betas),
            "grid": self.grid.as_dict() if self.grid else None,
            "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
        }


@dataclass(frozen=True)
class Evaluation:
    """The report plus what plots need to replay users (corpus, events by user)."""

    report: EvaluationReport
    corpus: Corpus
    by_user: Mapping[str, tuple[Event, ...]]
    splits: tuple[UserSplit, ...]
    per_user: Mapping[str, Mapping[str, FloatMatrix]]


def _estimates(
    values: Mapping[str, FloatMatrix], draws: npt.NDArray[np.int64]
) -> dict[str, Estimate]:
    return {name: estimate(v, draws) for name, v in values.items()}


def _choose_betas(
    val: Sequence[UserSplit],
    corpus: Corpus,
    events: Sequence[Event],
    config: EvalConfig,
    tie_order: npt.NDArray[np.int64],
    wanted: Sequence[str],
) -> dict[str, Any]:
    """Per blend, the beta with the best validation NDCG@K (ties: the smaller beta)."""
    if not val:
        raise ConfigurationError(
            "no user has enough history for a validation split; lower --min-history or "
            "--holdout-fraction"
        )
    vectors = user_vectors(val, corpus, config, with_clusters=False)
    names = [f"{blend}@{beta}" for blend in wanted for beta in config.betas]
    scorers = make_scorers(names, vectors, corpus.item_vectors, config, {})
    ranks = rank_targets(val, corpus, scorers, Popularity.of(events, corpus, config), tie_order)
    metric = f"ndcg@{config.primary_k}"
    chosen: dict[str, Any] = {"metric": metric, "validation_users": len(val)}
    for blend in wanted:
        curve = {
            beta: float(
                per_user_metrics(ranks[f"{blend}@{beta}"], [config.primary_k])[metric].mean()
            )
            for beta in config.betas
        }
        best = max(config.betas, key=lambda b: (curve[b], -b))
        chosen[blend] = {
            "beta": best,
            "validation": {str(b): round(v, 5) for b, v in curve.items()},
        }
    return chosen


def run_grid(
    val: Sequence[UserSplit],
    test: Sequence[UserSplit],
    corpus: Corpus,
    events: Sequence[Event],
    config: EvalConfig,
    tie_order: npt.NDArray[np.int64],
    draws: npt.NDArray[np.int64],
) -> GridResult:
    """Sweep half-lives and type weights for `decay` on validation; report both on test."""
    metric = f"ndcg@{config.primary_k}"
    rows: list[dict[str, Any]] = []
    best: tuple[float, InterestParams, dict[str, Any]] | None = None
    for short in GRID_SHORT_HALF_LIVES:
        for long in GRID_LONG_HALF_LIVES:
            if long <= short:
                continue
            for label, weights in GRID_TYPE_WEIGHTS.items():
                params = replace(
                    config.params,
                    short_half_life_s=short,
                    long_half_life_s=long,
                    type_weights=dict(weights),
                )
                score = _decay_metric(val, corpus, events, config, params, tie_order)[metric]
                row = {
                    "short_half_life_h": short / HOUR,
                    "long_half_life_d": long / DAY,
                    "type_weights": label,
                    metric: round(float(score.mean()), 5),
                }
                rows.append(row)
                if best is None or float(score.mean()) > best[0]:
                    best = (float(score.mean()), params, row)
    assert best is not None
    rows.sort(key=lambda r: -r[metric])
    test_best = _decay_metric(test, corpus, events, config, best[1], tie_order)
    test_default = _decay_metric(test, corpus, events, config, config.params, tie_order)
    return GridResult(
        metric, tuple(rows), best[2], _estimates(test_best, draws), _estimates(test_default, draws)
    )


def _decay_metric(
    splits: Sequence[UserSplit],
    corpus: Corpus,
    events: Sequence[Event],
    config: EvalConfig,
    params: InterestParams,
    tie_order: npt.NDArray[np.int64],
) -> dict[str, FloatMatrix]:
    vectors = user_vectors(splits, corpus, config, params=params, with_clusters=False)
    scorers = make_scorers(["decay"], vectors, corpus.item_vectors, config, {})
    ranks = rank_targets(splits, corpus, scorers, Popularity.of(events, corpus, config), tie_order)
    return per_user_metrics(ranks["decay"], config.ks)


def evaluate(
    log: EventLog,
    encoder: Encoder,
    config: EvalConfig | None = None,
    *,
    grid: bool = False,
    cache_dir: Path | None = None,
    items: Mapping[str, str] | None = None,
    on_stage: Callable[[str], None] | None = None,
) -> Evaluation:
    """Split, profile, rank and measure every configured strategy on `log`.

    `items` (item_id -> text, e.g. from `read_items`) supplies the texts items are ranked
    by and the texts of clicks that carry none; without it they come from the events.
    """
    config = config or EvalConfig()
    stage = on_stage or (lambda _: None)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    log = resolve_texts(log, items)
    if not log.events:
        raise SourceError(f"no valid events in {log.source} ({log.rejected} rejected)")
    stage(f"encoding texts with {encoder.model_id}")
    corpus = build_corpus(log.events, encoder, cache_dir, items)
    timings["encode"] = time.perf_counter() - started
    if not corpus.item_ids:
        raise SourceError(f"no event in {log.source} carries an item_id: nothing to rank")

    mark = time.perf_counter()
    by_user: dict[str, list[Event]] = defaultdict(list)
    for event in log.events:
        by_user[event.user_id].append(event)
    positive = _positive_rule(corpus, config)
    test, skipped = split_users(by_user, config.holdout_fraction, positive, config.min_history)
    if not test:
        raise SourceError(
            f"no user in {log.source} has {config.min_history + 1}+ positive events with items "
            f"(skipped: {skipped}); nothing to evaluate"
        )
    val = validation_splits(test, config.holdout_fraction, positive, config.min_history)
    timings["split"] = time.perf_counter() - mark

    rng = np.random.default_rng(config.seed)
    tie_order = rng.permutation(len(corpus.item_ids)).astype(np.int64)
    draws = bootstrap_indices(len(test), config.bootstrap, config.seed)

    mark = time.perf_counter()
    wanted_blends = [b for b in BLENDS if b in config.strategies]
    stage(f"choosing blend weights on {len(val)} validation users")
    betas = (
        _choose_betas(val, corpus, log.events, config, tie_order, wanted_blends)
        if wanted_blends
        else {}
    )
    timings["validation"] = time.perf_counter() - mark

    mark = time.perf_counter()
    stage(f"folding {len(test)} profiles")
    vectors = user_vectors(test, corpus, config, with_clusters="clusters" in config.strategies)
    timings["profiles"] = time.perf_counter() - mark

    mark = time.perf_counter()
    stage(f"ranking {len(corpus.item_ids)} items for {len(test)} users")
    chosen = {b: betas[b]["beta"] for b in wanted_blends}
    scorers = make_scorers(config.strategies, vectors, corpus.item_vectors, config, chosen)
    ranks = rank_targets(
        test, corpus, scorers, Popularity.of(log.events, corpus, config), tie_order
    )
    per_user = {name: per_user_metrics(r, config.ks) for name, r in ranks.items()}
    timings["ranking"] = time.perf_counter() - mark

    mark = time.perf_counter()
    results = tuple(
        StrategyResult(name, _estimates(per_user[name], draws), chosen.get(name))
        for name in config.strategies
    )
    lifts: dict[str, dict[str, Estimate]] = {}
    for a, b in LIFTS:
        if a in per_user and b in per_user:
            lifts[f"{a} vs {b}"] = {
                m: lift(per_user[a][m], per_user[b][m], draws) for m in per_user[a]
            }
    timings["bootstrap"] = time.perf_counter() - mark

    grid_result = None
    if grid:
        mark = time.perf_counter()
        stage("sweeping half-lives and type weights on the validation split")
        grid_result = run_grid(val, test, corpus, log.events, config, tie_order, draws)
        timings["grid"] = time.perf_counter() - mark
    timings["total"] = time.perf_counter() - started

    users = {
        "total": len(by_user),
        "evaluated": len(test),
        "skipped": skipped,
        "validation": len(val),
        "targets_per_user": round(float(np.mean([len(s.targets) for s in test])), 2),
    }
    report = EvaluationReport(
        log=log,
        model_id=corpus.model_id,
        items=len(corpus.item_ids),
        users=users,
        config=config,
        strategies=results,
        lifts=lifts,
        betas=betas,
        timings=timings,
        grid=grid_result,
    )
    frozen = {user: tuple(events) for user, events in by_user.items()}
    return Evaluation(report, corpus, frozen, tuple(test), per_user)


# ---------------------------------------------------------------------------------------
# Replaying a user over time (for the drift plots)


@dataclass(frozen=True)
class Timeline:
    """One user's profile read at regular times: drift and cluster shares.

    `drift` is cos(short(t), long(t)) as published in profile updates; `short_to_final` and
    `long_to_final` compare each horizon at t with the final long-term profile, so a slow
    long-term movement and a jumpy short term can be told apart. NaN where a horizon is
    empty or has decayed away.
    """

    user_id: str
    times: FloatMatrix
    drift: FloatMatrix
    short_to_final: FloatMatrix
    long_to_final: FloatMatrix
    cluster_labels: tuple[str, ...]
    cluster_weights: FloatMatrix

    @property
    def cluster_shares(self) -> FloatMatrix:
        total = self.cluster_weights.sum(axis=1, keepdims=True)
        shares: FloatMatrix = np.divide(
            self.cluster_weights,
            total,
            out=np.zeros_like(self.cluster_weights),
            where=total > 0,
        )
        return shares


def user_timeline(
    events: Sequence[Event], corpus: Corpus, params: InterestParams, points: int = 120
) -> Timeline:
    """Fold a user's events step by step with `fold_events` and read the profile `points`
    times. Clusters are rebuilt at every step, so each step's clusters are matched to the
    final ones by nearest centroid to make their masses comparable over time (an interest
    that left the bounded summary shows up under its nearest surviving cluster)."""
    ordered = sorted(events, key=lambda e: (e.ts, e.event_id))
    weighted = weighted_events(ordered, corpus, params)
    dim = corpus.text_vectors.shape[1]
    profile = UserProfile.new(ordered[0].user_id, corpus.model_id, dim)
    times = np.linspace(ordered[0].ts, ordered[-1].ts, points)
    shorts, longs = np.zeros((points, dim)), np.zeros((points, dim))
    snapshots = []
    done = 0
    for p, t in enumerate(times):
        end = done
        while end < len(weighted) and weighted[end].ts <= t:
            end += 1
        if end > done:
            profile = fold_events(profile, weighted[done:end], params, updated_at=t).profile
            done = end
        state = profile.state
        shorts[p] = _unit(state.short.decayed_to(t, params.short_decay).profile(), dim)
        longs[p] = _unit(state.long.decayed_to(t, params.long_decay).profile(), dim)
        # Cluster masses are referred to the last event; bring them to time t as well.
        age = 0.0 if state.long.t_ref is None else max(0.0, t - state.long.t_ref)
        factor = math.exp(-params.long_decay * age)
        snapshots.append([(c.centroid, c.weight * factor) for c in profile.clusters])

    def cosines(a: FloatMatrix, b: FloatMatrix) -> FloatMatrix:
        empty = ~a.any(axis=1) | ~b.any(axis=1)
        values: FloatMatrix = np.where(empty, np.nan, (a * b).sum(axis=1))
        return values

    final_long = np.broadcast_to(longs[-1], longs.shape)
    final = profile.clusters
    weights = np.zeros((points, len(final)))
    if final:
        anchors = np.stack([c.centroid for c in final])
        for p, clusters in enumerate(snapshots):
            for centroid, weight in clusters:
                weights[p, int(np.argmax(anchors @ centroid))] += weight
    return Timeline(
        user_id=ordered[0].user_id,
        times=times,
        drift=cosines(shorts, longs),
        short_to_final=cosines(shorts, final_long),
        long_to_final=cosines(longs, final_long),
        cluster_labels=tuple(c.label for c in final),
        cluster_weights=weights,
    )


def timeline_users(evaluation: Evaluation, count: int) -> list[str]:
    """Users worth plotting: the evaluated ones with the most events, then by id."""
    evaluated = {s.user_id for s in evaluation.splits}
    ranked = sorted(evaluated, key=lambda u: (-len(evaluation.by_user[u]), u))
    return ranked[:count]


# ---------------------------------------------------------------------------------------
# Planted interests (generated workloads only) and output


def planted_recovery(evaluation: Evaluation, workload: Any) -> dict[str, Any]:
    """On a generated workload, `recovery()` of the profiles after all of each user's events:
    are the top clusters planted interests, is the short term nearest a current one?"""
    from streams.workload import recovery

    corpus = evaluation.corpus
    by_topic: dict[str, list[int]] = defaultdict(list)
    for item in workload.items:
        if item.text in corpus.text_row:
            by_topic[item.topic].append(corpus.text_row[item.text])
    topic_vectors = {}
    for topic, rows in by_topic.items():
        mean = corpus.text_vectors[rows].astype(np.float64).mean(axis=0)
        topic_vectors[topic] = mean / np.linalg.norm(mean)
    params = evaluation.report.config.params
    profiles = {
        user: fold_history(events, corpus, params) for user, events in evaluation.by_user.items()
    }
    result: dict[str, Any] = recovery(profiles, workload, topic_vectors).as_dict()
    return result


def write_metrics(report: EvaluationReport, out_dir: Path, extra: Mapping[str, Any]) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "metrics.json"
    path.write_text(json.dumps({**report.as_dict(), **extra}, indent=2) + "\n", encoding="utf-8")
    return path


def _cell(value: Estimate, best: bool) -> str:
    mean = f"[bold green]{value.mean:.3f}[/]" if best else f"{value.mean:.3f}"
    interval = f"{value.low:.3f}-{value.high:.3f}".replace("0.", ".")
    return f"{mean}\n[dim]{interval}[/]"


def _lift_cell(value: Estimate) -> str:
    text = f"{value.mean:+.0%} ({100 * value.low:+.0f}..{100 * value.high:+.0f})"
    if value.low > 0:
        return f"[green]{text}[/]"
    return f"[red]{text}[/]" if value.high < 0 else text


def report_tables(report: EvaluationReport) -> list[Any]:
    """Rich renderables for the terminal: strategies, lifts, and the grid when it ran.

    Each cell is the mean over users above its 95% interval, so that the table still fits
    an 80-column terminal with three cut-offs.
    """
    from rich import box
    from rich.table import Table

    config = report.config
    columns = [f"recall@{k}" for k in config.ks] + [f"ndcg@{config.primary_k}", "mrr"]
    users = report.users
    table = Table(
        title=(
            f"{users['evaluated']:,} users, {report.items:,} items, {report.model_id}:"
            " mean over users, 95% bootstrap CI below"
        ),
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    table.add_column("strategy", no_wrap=True)
    for column in columns:
        table.add_column(column, justify="right", no_wrap=True)
    best = {c: max(s.metrics[c].mean for s in report.strategies) for c in columns}
    for result in report.strategies:
        cells = [_cell(result.metrics[c], result.metrics[c].mean == best[c]) for c in columns]
        table.add_row(result.name, *cells)
    tables: list[Any] = [table]
    if report.lifts:
        # Comparisons as columns: three of them fit 80 characters, five metrics would not.
        lifts = Table(
            title="relative lift of A over B (mean A / mean B - 1), paired bootstrap 95% CI",
            title_justify="left",
            box=box.SIMPLE_HEAD,
        )
        lifts.add_column("metric", no_wrap=True)
        for name in report.lifts:
            lifts.add_column(name.replace(" vs ", "\nvs "), justify="right", no_wrap=True)
        for column in columns:
            lifts.add_row(column, *[_lift_cell(v[column]) for v in report.lifts.values()])
        tables.append(lifts)
    if report.grid is not None:
        grid = report.grid
        sweep = Table(
            title=f"grid on the validation split ({grid.metric} of decay), best first",
            title_justify="left",
            box=box.SIMPLE_HEAD,
        )
        for column in ("short half-life", "long half-life", "type weights", grid.metric):
            sweep.add_column(column, justify="right")
        for row in grid.rows[:8]:
            sweep.add_row(
                f"{row['short_half_life_h']:g} h",
                f"{row['long_half_life_d']:g} d",
                row["type_weights"],
                f"{row[grid.metric]:.4f}",
            )
        tables.append(sweep)
    return tables


def report_summary(report: EvaluationReport) -> list[str]:
    """Plain lines under the tables: input counts, the grid's test check, timings."""
    log, users, t = report.log, report.users, report.timings
    lines = [
        f"input: {log.records:,} records, {len(log.events):,} valid, {log.rejected:,} rejected"
        + (
            f" ({', '.join(f'{k} x{v}' for k, v in log.reject_reasons.items())})"
            if log.rejected
            else ""
        )
        + f", {log.duplicates:,} duplicate ids dropped"
        + (
            f", {log.unresolved:,} text-less clicks on unknown items dropped"
            if log.unresolved
            else ""
        ),
        f"users: {users['evaluated']:,} evaluated of {users['total']:,}"
        + (
            f"; skipped: {', '.join(f'{k} x{v}' for k, v in users['skipped'].items())}"
            if users["skipped"]
            else ""
        )
        + f"; {users['targets_per_user']} held-out items per user; {users['validation']:,}"
        " users in the validation split",
    ]
    blends = [s for s in report.strategies if s.beta is not None]
    if blends:
        lines.append(
            "blend weights chosen on the validation split: "
            + ", ".join(f"{s.name} beta={s.beta:g}" for s in blends)
            + f" (log(1 + popularity) + beta * profile score, best {report.betas['metric']})"
        )
    if report.grid is not None:
        grid, metric = report.grid, report.grid.metric
        best = grid.best
        lines.append(
            f"grid best on validation: short {best['short_half_life_h']:g} h, long "
            f"{best['long_half_life_d']:g} d, weights {best['type_weights']}; on test {metric}"
            f" {grid.test_best[metric].mean:.4f} vs {grid.test_default[metric].mean:.4f} with"
            " the configured settings"
        )
    lines.append(
        "time: "
        + ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in t.items() if stage != "total")
        + f"; total {t['total']:.1f} s"
    )
    return lines
