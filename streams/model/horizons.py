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
    """Knobs of the interest model; defaults follow the design document."""

    short_half_life_s: float = 6 * HOUR
    long_half_life_s: float = 30 * DAY
    type_weights: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_TYPE_WEIGHTS))
    summary_size: int = 64
    max_clusters: int = 8
    cluster_similarity: float = 0.35
    recent_ids: int = 1000

    def __post_init__(self) -> None:
        if self.short_half_life_s <= 0 or self.long_half_life_s <= 0:
            raise ValueError("half-lives must be positive")
        if self.summary_size < 1 or self.max_clusters < 1 or self.recent_ids < 1:
            raise ValueError("summary_size, max_clusters and recent_ids must be >= 1")

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
    decayed_sum = state.decayed_sum * carry + factors @ vectors.astype(np.float64)
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
