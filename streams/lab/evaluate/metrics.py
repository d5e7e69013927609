"""Recall@K, NDCG@K and MRR per user, with paired bootstrap estimates and lifts."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from interest_stream.streams.lab.evaluate.config import FloatMatrix


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
