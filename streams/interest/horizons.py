"""The interest model: exponentially decayed sums over two horizons, as pure functions.

A horizon keeps S (vector), W (scalar) and t_ref. An event (x, t, w) adds
w·e^{-λ(t_ref - t)}·x to S; an event newer than t_ref first rescales the state to its time.
The result equals Σ w_i e^{-λ(t_max - t_i)} x_i whatever the arrival order, which is what
makes profiles replayable and comparable across workers. No I/O, no clocks, no Faust.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

FloatVector = npt.NDArray[np.float64]

HOUR = 3600.0
DAY = 24 * HOUR

DEFAULT_TYPE_WEIGHTS: Mapping[str, float] = {"click": 1.0, "query": 0.5, "review": 1.5}


@dataclass(frozen=True)
class InterestParams:
    """Knobs of the interest model; defaults follow the design document.

    The bounds (`summary_size`, `max_domains`, `recent_ids`) are what keep a stored profile
    bounded in bytes whatever the number of events; see interest/codec.py for the sizes.
    """

    short_half_life_s: float = 6 * HOUR
    long_half_life_s: float = 30 * DAY
    type_weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_TYPE_WEIGHTS))
    # Events kept to build clusters from (the highest ranked; interest/summary.py).
    summary_size: int = 24
    # Interest clusters of liked events, and of disliked (negatively weighted) ones.
    max_clusters: int = 8
    max_disliked: int = 3
    # Clusters: groups merge while their average cosine stays `cluster_margin` above the
    # catalogue's background cosine, the similarity of unrelated texts (interest/clusters.py).
    cluster_background: float = 0.1
    cluster_margin: float = 0.1
    # Per-domain horizons kept; more domains fold the least active into OTHER_DOMAIN.
    max_domains: int = 16
    # Event ids remembered against duplicates (same id, new offset): the last ones applied,
    # and only those within `recent_window_s` of event time of the newest.
    recent_ids: int = 64
    recent_window_s: float = 30 * DAY

    def __post_init__(self) -> None:
        if self.short_half_life_s <= 0 or self.long_half_life_s <= 0:
            raise ValueError("half-lives must be positive")
        counts = (self.summary_size, self.max_clusters, self.max_domains, self.recent_ids)
        if min(counts) < 1 or self.max_disliked < 0:
            raise ValueError(
                "summary_size, max_clusters, max_domains and recent_ids must be >= 1,"
                " max_disliked >= 0"
            )
        if not -1.0 < self.cluster_background < 1.0:
            raise ValueError("cluster_background must be a cosine in (-1, 1)")
        if self.recent_window_s <= 0:
            raise ValueError("recent_window_s must be positive")

    @property
    def short_decay(self) -> float:
        """λ of the short horizon, per second."""
        return math.log(2) / self.short_half_life_s

    @property
    def long_decay(self) -> float:
        """λ of the long horizon, per second."""
        return math.log(2) / self.long_half_life_s


@dataclass(frozen=True)
class HorizonState:
    """Decayed sums of one horizon, all referred to time `t_ref` (epoch seconds)."""

    decayed_sum: FloatVector
    weight: float
    t_ref: float | None

    @classmethod
    def empty(cls, dim: int) -> HorizonState:
        return cls(np.zeros(dim, dtype=np.float64), 0.0, None)

    def profile(self) -> FloatVector | None:
        """S/‖S‖, or None while nothing (or only cancelling events) has been seen."""
        norm = float(np.linalg.norm(self.decayed_sum))
        if norm < 1e-12:
            return None
        return self.decayed_sum / norm

    def decayed_to(self, t: float, decay: float) -> HorizonState:
        """The same state referred to a later time t (reading a profile 'now')."""
        if self.t_ref is None or t <= self.t_ref:
            return self
        factor = math.exp(-decay * (t - self.t_ref))
        return HorizonState(self.decayed_sum * factor, self.weight * factor, t)

    def weight_at(self, t: float, decay: float) -> float:
        """`decayed_to(t, decay).weight`, without decaying the sum (the same arithmetic)."""
        if self.t_ref is None or t <= self.t_ref:
            return self.weight
        return self.weight * math.exp(-decay * (t - self.t_ref))

    def merged(self, other: HorizonState, decay: float) -> HorizonState:
        """The sums of both, referred to the later of their times (still exact)."""
        if other.t_ref is None:
            return self
        if self.t_ref is None:
            return other
        t_ref = max(self.t_ref, other.t_ref)
        a, b = self.decayed_to(t_ref, decay), other.decayed_to(t_ref, decay)
        return HorizonState(a.decayed_sum + b.decayed_sum, a.weight + b.weight, t_ref)


def fold_horizon(
    state: HorizonState,
    vectors: npt.NDArray[np.floating],
    times: npt.NDArray[np.float64],
    weights: npt.NDArray[np.float64],
    decay: float,
) -> HorizonState:
    """Add events (rows of `vectors` at `times` with `weights`) to one horizon."""
    if len(times) == 0:
        return state
    newest = float(times.max())
    t_ref = newest if state.t_ref is None else max(state.t_ref, newest)
    carry = 1.0 if state.t_ref is None else math.exp(-decay * (t_ref - state.t_ref))
    # exp of a non-positive number: old events underflow to 0, never to inf or nan.
    factors = weights * np.exp(-decay * (t_ref - times))
    # asarray: no copy when the caller already holds float64 rows (one copy for both horizons).
    decayed_sum = state.decayed_sum * carry + factors @ np.asarray(vectors, dtype=np.float64)
    return HorizonState(decayed_sum, state.weight * carry + float(factors.sum()), t_ref)


@dataclass(frozen=True)
class InterestState:
    """Short- and long-term horizons of one user, or of one (user, domain)."""

    short: HorizonState
    long: HorizonState

    @classmethod
    def empty(cls, dim: int) -> InterestState:
        return cls(HorizonState.empty(dim), HorizonState.empty(dim))

    def fold(
        self,
        vectors: npt.NDArray[np.floating],
        times: npt.NDArray[np.float64],
        weights: npt.NDArray[np.float64],
        params: InterestParams,
    ) -> InterestState:
        return InterestState(
            fold_horizon(self.short, vectors, times, weights, params.short_decay),
            fold_horizon(self.long, vectors, times, weights, params.long_decay),
        )

    def drift(self) -> float | None:
        """Cosine between short- and long-term profiles: low means tastes are moving."""
        short, long = self.short.profile(), self.long.profile()
        if short is None or long is None:
            return None
        return float(short @ long)


def seed_ema(vectors: Sequence[npt.NDArray[np.floating]], keep: float) -> FloatVector | None:
    """The seed baseline p <- k·p + (1-k)·v over events in arrival order.

    Equals the decayed sum for evenly spaced unit-weight events with k = e^{-λΔt}, up to the
    normalization. Kept for evaluation against the decayed model.
    """
    profile: FloatVector | None = None
    for vector in vectors:
        v = np.asarray(vector, dtype=np.float64)
        profile = v.copy() if profile is None else keep * profile + (1.0 - keep) * v
    return profile
