"""What to evaluate: the strategies, cut-offs, split and bootstrap settings (`EvalConfig`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from interest_stream.streams.errors import ConfigurationError
from interest_stream.streams.interest.horizons import (
    DAY,
    HOUR,
    InterestParams,
)

FloatMatrix = npt.NDArray[np.float64]
# Progress reports: (stage, done, total), e.g. ("encoding", 2048, 19520).
ProgressFn = Callable[[str, int, int], None]


def no_progress(stage: str, done: int, total: int) -> None:
    """The default progress callback: silence."""


STRATEGIES: tuple[str, ...] = (
    "decay",
    "clusters",
    "seed-ema",
    "mean",
    "last",
    "popular",
    "decay+popular",
    "mean+popular",
    # Cosines in the catalogue-centred space: the catalogue's mean item vector is taken off
    # the items and the profiles (S - W x mean for a decayed sum) before the cosine. Item
    # texts from one template ("Title (year). Genres: ...") share a large common part that
    # otherwise dominates every cosine.
    "decay-centered",
    "mean-centered",
    # What the product ranks with: `profile rank` and ProfileClient.rank given candidates
    # with their popularity (log(1 + popularity) + beta x the centred profile score).
    "product",
    "decay-centered+popular",
    "mean-centered+popular",
)
DEFAULT_STRATEGIES: tuple[str, ...] = (
    "decay",
    "clusters",
    "seed-ema",
    "mean",
    "last",
    "popular",
    "decay+popular",
    "mean+popular",
    "decay-centered+popular",
    "mean-centered+popular",
    "product",
)
BLENDS: Mapping[str, str] = {
    "decay+popular": "decay",
    "mean+popular": "mean",
    "decay-centered+popular": "decay-centered",
    "mean-centered+popular": "mean-centered",
}
LIFTS: tuple[tuple[str, str], ...] = (
    ("decay+popular", "popular"),
    ("decay+popular", "mean+popular"),
    ("decay", "mean"),
    ("decay-centered+popular", "popular"),
    ("decay-centered+popular", "mean-centered+popular"),
    ("product", "popular"),
    ("product", "mean+popular"),
    ("decay-centered+popular", "decay+popular"),
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
    strategies: tuple[str, ...] = DEFAULT_STRATEGIES
    positive_rating: float = 4.0
    min_history: int = 3
    short_weight: float = 0.5
    ema_keep: float = 0.9
    betas: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
    bootstrap: int = 1000
    seed: int = 0
    params: InterestParams = field(default_factory=InterestParams)
    # Estimate the clusters' background cosine from the log's texts, as the product does
    # for a new store (streams/core/calibration.py); False: use params as given.
    calibrate_background: bool = True

    def __post_init__(self) -> None:
        if not 0.0 < self.holdout_fraction < 1.0:
            raise ConfigurationError(
                f"holdout fraction must be in (0, 1), got {self.holdout_fraction}"
            )
        if not self.ks or any(k < 1 for k in self.ks):
            raise ConfigurationError(f"every K must be a positive integer, got {self.ks}")
        unknown = [s for s in self.strategies if not known_strategy(s)]
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


def known_strategy(name: str) -> bool:
    """A strategy, or a blend with its weight fixed ('decay-centered+popular@4'), which
    then is not chosen on the validation split."""
    base, at, beta = name.partition("@")
    if not at:
        return base in STRATEGIES
    try:
        return base in BLENDS and float(beta) >= 0
    except ValueError:
        return False


def base_strategy(name: str) -> str:
    """'decay-centered+popular@4' -> 'decay-centered+popular'."""
    return name.partition("@")[0]


def parse_strategies(text: str) -> tuple[str, ...]:
    """'decay,popular,decay-centered+popular@4' -> names; a ConfigurationError otherwise."""
    names = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [n for n in names if not known_strategy(n)]
    if unknown or not names:
        raise ConfigurationError(
            f"unknown strategies {unknown or text!r}: choose from {', '.join(STRATEGIES)}"
        )
    return names
