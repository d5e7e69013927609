"""How a ranker scores candidates against a profile, as pure functions over numpy arrays.

`ProfileVectors` is the ranker's view of a stored profile read at a given time: unit long-
and short-term vectors, their decayed masses at that time, liked and disliked cluster
centroids with weights and labels. Reads know what time it is: both horizons are decayed to
the time of the read, and the short-term part of a score counts in proportion to the user's
recent activity (`short_share`), so a burst that is days old no longer steers a ranking.
`score_candidates` is the weighted cosine that `interest-stream profile score|rank` and
the Python client both use, `contextual_vector` the attention-weighted profile for a
context, and `nearest` the exact nearest-neighbour scan that stands in for an ANN index
where a store has none.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from interest_stream.streams.errors import ConfigurationError, InterestStreamError
from interest_stream.streams.interest.clusters import Cluster, contextual_profile
from interest_stream.streams.interest.profile import UserProfile

FloatArray = npt.NDArray[np.float32]


def short_share(short_weight: float, long_weight: float, half_lives: tuple[float, float]) -> float:
    """How much the short-term profile should count, 0..1: the user's recent activity rate
    relative to their long-term rate (W_short/H_short over W_long/H_long, capped at 1).

    A steadily active user has both decayed masses in proportion to their half-lives, so
    the share is about 1; once the last event recedes, W_short halves every short
    half-life while W_long barely moves, and the share fades to nothing: 1/16 four short
    half-lives later.
    """
    if short_weight <= 0 or long_weight <= 0:
        return 0.0
    rate_short = short_weight / half_lives[0]
    rate_long = long_weight / half_lives[1]
    return min(1.0, rate_short / rate_long)


@dataclass(frozen=True)
class ProfileVectors:
    """A profile as rankers use it, read at time `at`: unit vectors, decayed masses,
    liked centroids (k, dim) with weights and labels, disliked centroids (m, dim)."""

    user_id: str
    model_id: str
    version: int
    updated_at: float
    event_count: int
    long: FloatArray | None
    short: FloatArray | None
    centroids: FloatArray
    cluster_weights: FloatArray
    labels: tuple[str, ...]
    at: float = 0.0
    long_weight: float = 0.0
    short_weight: float = 0.0
    short_share: float = 1.0
    disliked: FloatArray | None = None
    disliked_labels: tuple[str, ...] = ()
    disliked_weights: FloatArray | None = None
    long_norm: float = 1.0
    short_norm: float = 1.0

    @classmethod
    def from_profile(cls, profile: UserProfile, at: float | None = None) -> ProfileVectors:
        """The profile read at time `at` (epoch seconds; default: its newest event time).

        Directions do not change with decay, masses do: horizons and cluster weights are
        decayed to `at`, and `short_share` follows (see `short_share`)."""
        state = profile.state
        decay_short, decay_long = profile.decays
        newest = state.long.t_ref
        at = at if at is not None else (newest if newest is not None else profile.updated_at)
        long_at = state.long.decayed_to(at, decay_long)
        short_at = state.short.decayed_to(at, decay_short)
        long_weight, short_weight = long_at.weight, short_at.weight
        long, short = state.long.profile(), state.short.profile()
        liked, disliked = profile.liked, profile.disliked
        fade = math.exp(-decay_long * max(0.0, at - newest)) if newest is not None else 1.0
        return cls(
            user_id=profile.user_id,
            model_id=profile.model_id,
            version=profile.version,
            updated_at=profile.updated_at,
            event_count=profile.event_count,
            long=None if long is None else long.astype(np.float32),
            short=None if short is None else short.astype(np.float32),
            centroids=_stack(liked, profile.dim),
            cluster_weights=np.array([c.weight * fade for c in liked], dtype=np.float32),
            labels=tuple(c.label for c in liked),
            at=at,
            long_weight=long_weight,
            short_weight=short_weight,
            short_share=short_share(short_weight, long_weight, profile.half_lives),
            disliked=_stack(disliked, profile.dim),
            disliked_labels=tuple(c.label for c in disliked),
            disliked_weights=np.array([c.weight * fade for c in disliked], dtype=np.float32),
            long_norm=float(np.linalg.norm(long_at.decayed_sum)),
            short_norm=float(np.linalg.norm(short_at.decayed_sum)),
        )

    @property
    def dim(self) -> int:
        return int(self.centroids.shape[1])

    def centered(self, center: npt.NDArray[np.floating]) -> ProfileVectors:
        """The profile in the space centred on the catalogue's mean vector: each horizon
        becomes S − W·center (the decayed sum of its events' offsets from the center),
        cluster centroids c − center; all unit. Same time of read, same weights."""
        mu = np.asarray(center, dtype=np.float64)

        def moved(unit: FloatArray | None, norm: float, weight: float) -> FloatArray | None:
            if unit is None:
                return None
            row: FloatArray = _unit_rows(unit.astype(np.float64) * norm - weight * mu)[0].astype(
                np.float32
            )
            return row

        def rows(matrix: FloatArray) -> FloatArray:
            if not len(matrix):
                return matrix
            moved_rows: FloatArray = _unit_rows(matrix.astype(np.float64) - mu).astype(np.float32)
            return moved_rows

        return replace(
            self,
            long=moved(self.long, self.long_norm, self.long_weight),
            short=moved(self.short, self.short_norm, self.short_weight),
            centroids=rows(self.centroids),
            disliked=None if self.disliked is None else rows(self.disliked),
        )

    def horizon(self, name: str) -> FloatArray | None:
        if name not in ("long", "short"):
            raise ConfigurationError(f"horizon must be 'long' or 'short', not {name!r}")
        return self.long if name == "long" else self.short


def _stack(clusters: tuple[Cluster, ...], dim: int) -> FloatArray:
    rows = np.array([c.centroid for c in clusters], dtype=np.float32)
    return rows.reshape(len(clusters), dim)


CONTEXT_MODES = ("attention", "mass")


@dataclass(frozen=True)
class ScoreWeights:
    """Weights of the parts of a score, the attention temperature τ, the popularity
    factor β and how the contextual part attends over the clusters (`context_mode`).

    `context_mode` "attention" (the default) attends by similarity alone; "mass" adds each
    liked cluster's share of the user's decayed mass to the attention logits (log share),
    so a candidate is judged against the interests the user spends most on: with a large
    `context` weight the score is then led by the user's main interests, not by whichever
    stray cluster a candidate happens to touch. Fitted values come from a scoring profile
    file (`interest-stream evaluate --fit`); these defaults were chosen by hand.
    """

    long: float = 0.3
    short: float = 0.5
    context: float = 0.2
    temperature: float = 0.1
    dislike: float = 0.2
    # With candidates' popularity: score = log(1 + popularity) + beta x the profile's score.
    beta: float = 4.0
    context_mode: str = "attention"

    def __post_init__(self) -> None:
        parts = (self.long, self.short, self.context)
        if min(*parts, self.dislike) < 0 or sum(parts) <= 0:
            raise ConfigurationError(
                f"score weights must be >= 0 and long+short+context > 0, got long={self.long},"
                f" short={self.short}, context={self.context}, dislike={self.dislike}"
            )
        if self.temperature <= 0:
            raise ConfigurationError(f"temperature must be > 0, got {self.temperature}")
        if self.beta < 0:
            raise ConfigurationError(f"beta must be >= 0, got {self.beta}")
        if self.context_mode not in CONTEXT_MODES:
            raise ConfigurationError(
                f"context mode must be one of {', '.join(CONTEXT_MODES)}, not {self.context_mode!r}"
            )


@dataclass(frozen=True)
class Scores:
    """Per candidate: the score and its parts (NaN where the profile lacks that part)."""

    total: npt.NDArray[np.float64]
    long: npt.NDArray[np.float64]
    short: npt.NDArray[np.float64]
    context: npt.NDArray[np.float64]
    dislike: npt.NDArray[np.float64]
    short_share: float = 1.0

    def row(self, index: int) -> dict[str, float | None]:
        """One candidate's numbers for printing or JSON: rounded, None for NaN."""
        names = ("score", "long", "short", "context", "dislike")
        values = (
            self.total[index],
            self.long[index],
            self.short[index],
            self.context[index],
            self.dislike[index],
        )
        return {
            name: None if np.isnan(value) else round(float(value), 6)
            for name, value in zip(names, values, strict=True)
        }


def _unit_rows(vectors: npt.ArrayLike) -> npt.NDArray[np.float64]:
    matrix = np.atleast_2d(np.asarray(vectors, dtype=np.float64))
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    unit: npt.NDArray[np.float64] = matrix / np.where(norms > 0, norms, 1.0)
    return unit


def contextual_vector(
    profile: ProfileVectors, context: npt.ArrayLike, temperature: float = 0.1
) -> FloatArray | None:
    """The unit contextual profile for a context vector: attention over the liked clusters
    (`clusters.contextual_profile`); the long-term profile if there are none."""
    if temperature <= 0:
        raise ConfigurationError(f"temperature must be > 0, got {temperature}")
    query = _unit_rows(context)[0]
    if query.shape[0] != profile.dim:
        raise InterestStreamError(
            f"context vector has {query.shape[0]} dimensions, the profile {profile.dim}"
        )
    if not len(profile.centroids):
        return profile.long
    mixed = contextual_profile(_clusters_of(profile), query, temperature)
    if mixed is None:  # pragma: no cover - clusters is not empty here
        return profile.long
    unit: FloatArray = _unit_rows(mixed)[0].astype(np.float32)
    return unit


def _clusters_of(profile: ProfileVectors) -> list[Cluster]:
    # contextual_profile reads only the centroids; weight and label ride along.
    return [
        Cluster(centroid.astype(np.float64), float(weight), label, 0)
        for centroid, weight, label in zip(
            profile.centroids, profile.cluster_weights, profile.labels, strict=True
        )
    ]


def attended_cosines(
    similarities: npt.NDArray[np.float64],
    gram: npt.NDArray[np.float64],
    temperature: float,
    log_prior: npt.NDArray[np.float64] | None = None,
) -> npt.NDArray[np.float64]:
    """cos(x, ctx(x)) for unit rows x, from s_k = x·c_k (n, k) and the centroids' Gram
    matrix G = C Cᵀ (k, k): with a = softmax(s/τ + prior), ctx(x) = Σ_k a_k c_k, so
    x·ctx = a·s and ‖ctx‖² = aᵀ G a. The same cosine as forming ctx(x) in the vector
    space, at O(k²) a candidate instead of O(k·dim): what lets evaluation score every
    temperature without touching the vectors again."""
    logits = similarities / temperature
    if log_prior is not None:
        logits = logits + log_prior[None, :]
    attention = np.exp(logits - logits.max(axis=1, keepdims=True))
    attention /= attention.sum(axis=1, keepdims=True)
    along = (attention * similarities).sum(axis=1)
    norms = np.sqrt(np.maximum(((attention @ gram) * attention).sum(axis=1), 0.0))
    cosines: npt.NDArray[np.float64] = along / np.where(norms > 0, norms, 1.0)
    return cosines


def _contextual_cosines(
    matrix: npt.NDArray[np.float64],
    centroids: npt.NDArray[np.float64],
    temperature: float,
    log_prior: npt.NDArray[np.float64] | None = None,
) -> npt.NDArray[np.float64]:
    """cos(x, ctx(x)) for every row x at once: ctx(x) = Σ_k softmax(x·c_k/τ + prior_k)·c_k
    (prior_k = 0 in "attention" mode, log of the cluster's mass share in "mass" mode)."""
    return attended_cosines(matrix @ centroids.T, centroids @ centroids.T, temperature, log_prior)


def mass_prior(cluster_weights: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """log of each cluster's share of the liked mass (the "mass" mode's attention prior);
    clusters without mass get a floor rather than -inf, so they can still be attended."""
    mass = np.maximum(np.asarray(cluster_weights, dtype=np.float64), 0.0)
    total = float(mass.sum())
    if total <= 0:
        return np.zeros(len(mass))
    prior: npt.NDArray[np.float64] = np.log(np.maximum(mass / total, 1e-6))
    return prior


def context_cosines(
    profile: ProfileVectors, matrix: npt.ArrayLike, weights: ScoreWeights
) -> npt.NDArray[np.float64]:
    """The contextual part of the score for unit candidate rows (NaN without clusters)."""
    rows = np.asarray(matrix, dtype=np.float64)
    if not len(profile.centroids):
        return np.full(rows.shape[0], np.nan)
    prior = mass_prior(profile.cluster_weights) if weights.context_mode == "mass" else None
    return _contextual_cosines(
        rows, profile.centroids.astype(np.float64), weights.temperature, prior
    )


def combine_parts(
    long: npt.NDArray[np.float64],
    short: npt.NDArray[np.float64],
    context: npt.NDArray[np.float64],
    dislike: npt.NDArray[np.float64],
    short_share: float | npt.NDArray[np.float64],
    weights: ScoreWeights,
    popularity: npt.ArrayLike | None = None,
) -> npt.NDArray[np.float64]:
    """The score from its parts (see `score_candidates`); each part is (..., candidates) and
    all-NaN along the last axis where the profile lacks it, `short_share` a number or one
    per leading row (..., 1). Evaluation calls this on many users at once, the product on
    one: the same arithmetic either way."""
    share = np.asarray(short_share, dtype=np.float64)
    total = np.zeros(np.broadcast_shapes(long.shape, short.shape, context.shape))
    weight_sum = np.zeros((*total.shape[:-1], 1))
    for part, weight in (
        (long, weights.long),
        (short, weights.short * share),
        (context, weights.context),
    ):
        present = ~np.isnan(part).all(axis=-1, keepdims=True)
        used = np.where(present & (np.asarray(weight) > 0), weight, 0.0)
        total = total + used * np.nan_to_num(part, nan=0.0)
        weight_sum = weight_sum + used
    has_dislike = ~np.isnan(dislike).all(axis=-1, keepdims=True)
    if weights.dislike > 0:
        total = total - np.where(has_dislike, weights.dislike, 0.0) * np.nan_to_num(
            dislike, nan=0.0
        )
    scored = weight_sum > 0
    total = np.where(scored, total / np.where(scored, weight_sum, 1.0), np.nan)
    if popularity is not None:
        prior = np.log1p(np.maximum(np.asarray(popularity, dtype=np.float64), 0.0))
        total = prior + weights.beta * np.where(np.isnan(total), 0.0, total)
    return total


def scoring_space(
    profile: ProfileVectors, candidates: npt.ArrayLike, center: npt.ArrayLike | None = None
) -> tuple[npt.NDArray[np.float64], ProfileVectors]:
    """Unit candidate rows and the profile in the space scores are taken in: as given, or
    centred on the catalogue's `center` (see `score_candidates`)."""
    matrix = _unit_rows(candidates)
    if matrix.shape[1] != profile.dim:
        raise InterestStreamError(
            f"candidate vectors have {matrix.shape[1]} dimensions, the profile {profile.dim}"
        )
    if center is not None:
        mu = np.asarray(center, dtype=np.float64)
        matrix = _unit_rows(matrix - mu)
        profile = profile.centered(mu)
    return matrix, profile


def score_candidates(
    profile: ProfileVectors,
    candidates: npt.ArrayLike,
    weights: ScoreWeights | None = None,
    *,
    center: npt.ArrayLike | None = None,
    popularity: npt.ArrayLike | None = None,
) -> Scores:
    """Score each candidate vector x (a row) against the profile:

        score(x) = (w_long·cos(x, long) + w_short·s·cos(x, short) + w_context·cos(x, ctx(x))
                    − w_dislike·max_k cos(x, d_k)) / (w_long + w_short·s + w_context)

    where s is the profile's `short_share` at the time of the read (1 for a user active
    now, fading to 0 as the last event recedes past a few short half-lives), ctx(x) =
    Σ_k softmax(x·c_k/τ)·c_k is the contextual profile over the user's liked clusters with
    the candidate itself as the context (a candidate that matches one of several
    interests is judged against that interest, not against their blurred average; in
    `context_mode` "mass" the attention also leans towards the clusters with the most
    decayed mass, see `ScoreWeights`), and
    d_k are the centroids of the user's disliked clusters: a candidate like something the
    user panned is pushed down. A part the profile lacks drops out and the rest is
    renormalized, so scores stay on the cosine scale.

    With the catalogue's `center` (its mean text vector), every cosine is taken in the
    space centred on it (candidates x − center, the profile `ProfileVectors.centered`):
    what catalogue texts all share (a template, the encoder's common direction) no longer
    makes every candidate look alike. With the candidates' `popularity` (interaction
    counts), the score becomes log(1 + popularity) + beta·score: the profile picks the
    user's topics, popularity orders what the profile scores nearly alike.
    """
    weights = weights or ScoreWeights()
    matrix, profile = scoring_space(profile, candidates, center)
    n = matrix.shape[0]
    missing = np.full(n, np.nan)
    long = missing if profile.long is None else matrix @ profile.long.astype(np.float64)
    short = missing if profile.short is None else matrix @ profile.short.astype(np.float64)
    context = context_cosines(profile, matrix, weights)
    dislike = missing.copy()
    if profile.disliked is not None and len(profile.disliked):
        dislike = (matrix @ profile.disliked.astype(np.float64).T).max(axis=1)
    total = combine_parts(
        long, short, context, dislike, profile.short_share, weights, popularity=popularity
    )
    return Scores(
        total=total,
        long=long,
        short=short,
        context=context,
        dislike=dislike,
        short_share=profile.short_share,
    )


def nearest(
    query: npt.ArrayLike,
    vectors: Iterable[tuple[str, npt.ArrayLike | None]],
    *,
    limit: int,
    exclude: str | None = None,
    chunk: int = 1024,
) -> list[tuple[str, float]]:
    """Exact top-`limit` (id, cosine) by cosine to `query`, best first, ties by id: the
    brute-force stand-in for an ANN index (the SQLite store has none). Memory stays at
    `chunk + limit` rows however many vectors there are."""
    if limit < 1:
        return []
    unit = _unit_rows(query)[0]
    best: list[tuple[str, float]] = []
    ids: list[str] = []
    rows: list[npt.NDArray[np.float64]] = []

    def merge() -> None:
        nonlocal best
        if rows:
            similarities = _unit_rows(np.stack(rows)) @ unit
            best.extend(zip(ids, (float(x) for x in similarities), strict=True))
            ids.clear()
            rows.clear()
        best = sorted(best, key=lambda item: (-item[1], item[0]))[:limit]

    for key, vector in vectors:
        if vector is None or key == exclude:
            continue
        ids.append(key)
        rows.append(np.asarray(vector, dtype=np.float64))
        if len(rows) >= chunk:
            merge()
    merge()
    return best


def same_vector_space(model_a: str, model_b: str) -> bool:
    """Whether vectors of two model ids may be compared: the same model, any precision
    ('all-MiniLM-L6-v2:int8:…' and '…:fp32:…' agree to ~0.99 cosine)."""
    return model_a.split(":", 1)[0] == model_b.split(":", 1)[0]


def ranking(scores: Scores) -> list[int]:
    """Candidate indexes by descending score (NaN last), ties in input order."""
    keyed = np.where(np.isnan(scores.total), -np.inf, scores.total)
    return sorted(range(len(keyed)), key=lambda i: (-float(keyed[i]), i))
