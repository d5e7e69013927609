"""How a ranker scores candidates against a profile, as pure functions over numpy arrays:
`ProfileVectors` is the ranker's view of a stored profile (unit long- and short-term
vectors, cluster centroids, weights, labels), `score_candidates` the weighted cosine that
`interest-stream profile score|rank` and `streams.client` both use, `contextual_vector` the
attention-weighted profile for a context, and `nearest` the exact nearest-neighbour scan
that stands in for an ANN index where a store has none.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from interest_stream.streams.errors import ConfigurationError, InterestStreamError
from interest_stream.streams.model.clusters import Cluster, contextual_profile
from interest_stream.streams.model.profile import UserProfile

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class ProfileVectors:
    """A profile as rankers use it: unit vectors, centroids (k, dim), weights and labels."""

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

    @classmethod
    def from_profile(cls, profile: UserProfile) -> ProfileVectors:
        state = profile.state
        long, short = state.long.profile(), state.short.profile()
        centroids = np.array([c.centroid for c in profile.clusters], dtype=np.float32)
        return cls(
            user_id=profile.user_id,
            model_id=profile.model_id,
            version=profile.version,
            updated_at=profile.updated_at,
            event_count=profile.event_count,
            long=None if long is None else long.astype(np.float32),
            short=None if short is None else short.astype(np.float32),
            centroids=centroids.reshape(len(profile.clusters), profile.dim),
            cluster_weights=np.array([c.weight for c in profile.clusters], dtype=np.float32),
            labels=tuple(c.label for c in profile.clusters),
        )

    @property
    def dim(self) -> int:
        return int(self.centroids.shape[1])

    def horizon(self, name: str) -> FloatArray | None:
        if name not in ("long", "short"):
            raise ConfigurationError(f"horizon must be 'long' or 'short', not {name!r}")
        return self.long if name == "long" else self.short


@dataclass(frozen=True)
class ScoreWeights:
    """Weights of the three parts of a score and the attention temperature τ."""

    long: float = 0.3
    short: float = 0.5
    context: float = 0.2
    temperature: float = 0.1

    def __post_init__(self) -> None:
        parts = (self.long, self.short, self.context)
        if min(parts) < 0 or sum(parts) <= 0:
            raise ConfigurationError(
                f"score weights must be >= 0 and not all 0, got long={self.long},"
                f" short={self.short}, context={self.context}"
            )
        if self.temperature <= 0:
            raise ConfigurationError(f"temperature must be > 0, got {self.temperature}")


@dataclass(frozen=True)
class Scores:
    """Per candidate: the score and its parts (NaN where the profile lacks that part)."""

    total: npt.NDArray[np.float64]
    long: npt.NDArray[np.float64]
    short: npt.NDArray[np.float64]
    context: npt.NDArray[np.float64]

    def row(self, index: int) -> dict[str, float | None]:
        """One candidate's numbers for printing or JSON: rounded, None for NaN."""
        values = (self.total[index], self.long[index], self.short[index], self.context[index])
        return {
            name: None if np.isnan(value) else round(float(value), 6)
            for name, value in zip(("score", "long", "short", "context"), values, strict=True)
        }


def _unit_rows(vectors: npt.ArrayLike) -> npt.NDArray[np.float64]:
    matrix = np.atleast_2d(np.asarray(vectors, dtype=np.float64))
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    unit: npt.NDArray[np.float64] = matrix / np.where(norms > 0, norms, 1.0)
    return unit


def contextual_vector(
    profile: ProfileVectors, context: npt.ArrayLike, temperature: float = 0.1
) -> FloatArray | None:
    """The unit contextual profile for a context vector: attention over the clusters
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
    clusters = _clusters_of(profile)
    mixed = contextual_profile(clusters, query, temperature)
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


def score_candidates(
    profile: ProfileVectors, candidates: npt.ArrayLike, weights: ScoreWeights | None = None
) -> Scores:
    """Score each candidate vector x (a row) against the profile:

        score(x) = (w_long·cos(x, long) + w_short·cos(x, short) + w_context·cos(x, ctx(x)))
                   / (sum of the weights of the parts the profile has)

    where ctx(x) = Σ_k softmax(x·c_k/τ)·c_k is the contextual profile (attention over the
    user's clusters, design.md) with the candidate itself as the context: a candidate that
    matches one of several interests is judged against that interest, not against their
    blurred average; as τ → 0 the term tends to the best cluster's cosine. A part the
    profile lacks (no clusters yet) drops out and the rest is renormalized, so scores stay
    on the cosine scale. Defaults 0.3/0.5/0.2 and τ 0.1, from `interest-stream evaluate` on
    the generated workload (drifting interests): within noise of the best strategy there
    (long and short at 0.5 each), where a heavier long/context mix (0.4/0.3/0.3) lost about
    13% NDCG@10; the context term is kept small but present because it is what lets one
    of several interests win a candidate outright.
    """
    weights = weights or ScoreWeights()
    matrix = _unit_rows(candidates)
    if matrix.shape[1] != profile.dim:
        raise InterestStreamError(
            f"candidate vectors have {matrix.shape[1]} dimensions, the profile {profile.dim}"
        )
    n = matrix.shape[0]
    missing = np.full(n, np.nan)
    long = missing if profile.long is None else matrix @ profile.long.astype(np.float64)
    short = missing if profile.short is None else matrix @ profile.short.astype(np.float64)
    context = missing.copy()
    if len(profile.centroids):
        clusters = _clusters_of(profile)
        for row, vector in enumerate(matrix):
            mixed = contextual_profile(clusters, vector, weights.temperature)
            if mixed is not None:
                context[row] = float(vector @ _unit_rows(mixed)[0])
    total = np.zeros(n)
    weight_sum = 0.0
    for part, weight in ((long, weights.long), (short, weights.short), (context, weights.context)):
        if weight > 0 and not np.isnan(part).all():
            total += weight * part
            weight_sum += weight
    if weight_sum > 0:
        total /= weight_sum
    else:  # an empty profile, or only the weighted-away parts exist: nothing to go on
        total = missing.copy()
    return Scores(total=total, long=long, short=short, context=context)


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
