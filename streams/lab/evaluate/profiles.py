"""Each user's profile at the cut, rebuilt with the product's own pure functions."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from interest_stream.schemas.events import Event
from interest_stream.streams.interest.horizons import (
    InterestParams,
    InterestState,
    seed_ema,
)
from interest_stream.streams.interest.profile import UserProfile, WeightedEvent, fold_events
from interest_stream.streams.interest.scoring import ProfileVectors
from interest_stream.streams.lab.evaluate.config import (
    EvalConfig,
    FloatMatrix,
    ProgressFn,
    no_progress,
)
from interest_stream.streams.lab.evaluate.data import Corpus, text_of
from interest_stream.streams.lab.evaluate.split import UserSplit, is_positive, weigh


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


def unit_or_zeros(vector: npt.NDArray[np.floating] | None, dim: int) -> FloatMatrix:
    if vector is None:
        return np.zeros(dim)
    norm = float(np.linalg.norm(vector))
    return np.asarray(vector, dtype=np.float64) / norm if norm > 1e-12 else np.zeros(dim)


def centered(
    decayed_sum: npt.NDArray[np.floating] | None, weight: float, center: FloatMatrix
) -> npt.NDArray[np.float64] | None:
    """A decayed sum S of unit vectors with weight W moved into the space centred on
    `center`: S - W x center = sum of w_i d_i (x_i - center). None when nothing is left."""
    if decayed_sum is None:
        return None
    moved: npt.NDArray[np.float64] = np.asarray(decayed_sum, dtype=np.float64) - weight * center
    return moved


@dataclass(frozen=True)
class UserVectors:
    """Per strategy, one unit row per user (zeros where a strategy has no profile).

    The `*_centered` rows live in the space centred on the catalogue's mean item vector
    (`center`): rank items against them by cosine to (item - center).
    """

    long: FloatMatrix
    short: FloatMatrix
    mean: FloatMatrix
    ema: FloatMatrix
    last: FloatMatrix
    centroids: FloatMatrix
    centroid_owner: npt.NDArray[np.int64]
    long_centered: FloatMatrix
    short_centered: FloatMatrix
    mean_centered: FloatMatrix
    center: FloatMatrix
    # The product's own view of each profile and the center a store would estimate.
    views: tuple[ProfileVectors, ...] = ()
    catalogue_center: FloatMatrix | None = None


def user_vectors(
    splits: Sequence[UserSplit],
    corpus: Corpus,
    config: EvalConfig,
    *,
    params: InterestParams | None = None,
    with_clusters: bool = True,
    on_progress: ProgressFn = no_progress,
    catalogue_center: FloatMatrix | None = None,
) -> UserVectors:
    """Profiles at each user's cut: decayed horizons (short falls back to long once it has
    decayed to nothing), clusters, and the baselines' profiles, from the same history."""
    params = params or config.params
    dim = corpus.text_vectors.shape[1]
    center = corpus.item_vectors.astype(np.float64).mean(axis=0)
    rows: dict[str, list[FloatMatrix]] = defaultdict(list)
    centroids: list[FloatMatrix] = []
    owners: list[int] = []
    views: list[ProfileVectors] = []
    positive = positive_rule(corpus, config)
    for index, split in enumerate(splits):
        if index % 32 == 0:
            on_progress("profiles", index, len(splits))
        if with_clusters:
            profile = fold_history(split.history, corpus, params)
            state = profile.state
            for cluster in profile.liked:
                centroids.append(np.asarray(cluster.centroid, dtype=np.float64))
                owners.append(index)
            # The ranker's view of the profile, read at the cut: what the product scores.
            views.append(
                ProfileVectors.from_profile(profile, at=max(split.cut, profile.updated_at))
            )
        else:
            state = fold_horizons(split.history, corpus, params)
        # Read both horizons at the cut, as a ranker would "now": a short-term profile whose
        # events are many half-lives old has decayed away and must not steer the ranking.
        long_state = state.long.decayed_to(split.cut, params.long_decay)
        short_state = state.short.decayed_to(split.cut, params.short_decay)
        long, short = long_state.profile(), short_state.profile()
        rows["long"].append(unit_or_zeros(long, dim))
        rows["short"].append(unit_or_zeros(short if short is not None else long, dim))
        long_c = centered(long_state.decayed_sum, long_state.weight, center)
        short_c = centered(short_state.decayed_sum, short_state.weight, center)
        rows["long_centered"].append(unit_or_zeros(long_c, dim))
        rows["short_centered"].append(unit_or_zeros(short_c if short is not None else long_c, dim))
        liked = [
            corpus.vector(text_of(e))
            for e in split.history
            if weigh(e, params, corpus.sentiment) > 0
        ]
        mean = np.mean(np.stack(liked), axis=0) if liked else None
        rows["mean"].append(unit_or_zeros(mean, dim))
        rows["mean_centered"].append(unit_or_zeros(None if mean is None else mean - center, dim))
        rows["ema"].append(unit_or_zeros(seed_ema(liked, config.ema_keep), dim))
        # A positive event always names an item (see is_positive).
        last_item = next(e.item_id or "" for e in reversed(split.history) if positive(e))
        rows["last"].append(
            unit_or_zeros(
                corpus.text_vectors[corpus.item_text_rows[corpus.item_row[last_item]]], dim
            )
        )

    on_progress("profiles", len(splits), len(splits))

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
        long_centered=stack("long_centered"),
        short_centered=stack("short_centered"),
        mean_centered=stack("mean_centered"),
        center=center,
        views=tuple(views),
        catalogue_center=center if catalogue_center is None else catalogue_center,
    )


def positive_rule(corpus: Corpus, config: EvalConfig) -> Callable[[Event], bool]:
    def rule(event: Event) -> bool:
        return is_positive(event, corpus.sentiment, config.positive_rating)

    return rule
