"""Scoring every item for a chunk of users with each strategy, and the rank of each target."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from interest_stream.schemas.events import Event
from interest_stream.streams.interest.scoring import ScoreWeights, score_candidates
from interest_stream.streams.lab.evaluate.config import (
    BLENDS,
    USER_CHUNK,
    EvalConfig,
    FloatMatrix,
    ProgressFn,
    no_progress,
)
from interest_stream.streams.lab.evaluate.data import Corpus
from interest_stream.streams.lab.evaluate.profiles import UserVectors, positive_rule
from interest_stream.streams.lab.evaluate.split import UserSplit


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
        positive = positive_rule(corpus, config)
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


def target_ranks(
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
    moved = np.asarray(items, dtype=np.float64) - vectors.center
    norms = np.linalg.norm(moved, axis=1, keepdims=True)
    centered_items = np.ascontiguousarray(moved / np.where(norms > 1e-12, norms, 1.0), np.float32)
    alpha = config.short_weight

    def cos(matrix: FloatMatrix, rows: slice, against: npt.NDArray[np.float32]) -> FloatMatrix:
        return (matrix[rows].astype(np.float32) @ against.T).astype(np.float64)

    def decay(chunk: Chunk) -> FloatMatrix:
        # Two horizons as one score: a weighted sum of the cosines to the short- and the
        # long-term profile (alpha = short weight); the short term stands in for what the
        # user is doing this week, the long term for everything they come back to.
        return (1.0 - alpha) * cos(vectors.long, chunk.rows, item_matrix) + alpha * cos(
            vectors.short, chunk.rows, item_matrix
        )

    def decay_centered(chunk: Chunk) -> FloatMatrix:
        long = cos(vectors.long_centered, chunk.rows, centered_items)
        return (1.0 - alpha) * long + alpha * cos(
            vectors.short_centered, chunk.rows, centered_items
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

    def product(chunk: Chunk) -> FloatMatrix:
        # The product's own ranking (`profile rank`, ProfileClient.rank) with the items'
        # popularity before the cut as the candidates' popularity: default weights and beta,
        # centred on the center a store estimates, profiles read at the cut.
        weights = ScoreWeights()
        out = np.empty((chunk.rows.stop - chunk.rows.start, len(item_matrix)))
        for row, user in enumerate(range(chunk.rows.start, chunk.rows.stop)):
            scores = score_candidates(
                vectors.views[user],
                item_matrix,
                weights,
                center=vectors.catalogue_center,
                popularity=chunk.popularity[row],
            )
            out[row] = np.nan_to_num(scores.total, nan=-1.0)
        return out

    base: dict[str, Callable[[Chunk], FloatMatrix]] = {
        "product": product,
        "decay": decay,
        "clusters": clusters,
        "seed-ema": lambda chunk: cos(vectors.ema, chunk.rows, item_matrix),
        "mean": lambda chunk: cos(vectors.mean, chunk.rows, item_matrix),
        "last": lambda chunk: cos(vectors.last, chunk.rows, item_matrix),
        "popular": lambda chunk: np.log1p(chunk.popularity),
        "decay-centered": decay_centered,
        "mean-centered": lambda chunk: cos(vectors.mean_centered, chunk.rows, centered_items),
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
    on_progress: ProgressFn = no_progress,
    stage: str = "ranking",
) -> dict[str, FloatMatrix]:
    """Ranks of each user's targets under every scorer: (users, max targets), inf padded.

    `splits` must be in cut order (popularity is accumulated forward in time).
    """
    width = max((len(s.targets) for s in splits), default=1)
    ranks = {s.name: np.full((len(splits), width), np.inf) for s in scorers}
    for start in range(0, len(splits), USER_CHUNK):
        on_progress(stage, start, len(splits))
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
            found = target_ranks(scores, target_rows, target_items, tie_order)
            ranks[scorer.name][start + target_rows, target_cols] = found
    on_progress(stage, len(splits), len(splits))
    return ranks
