"""`evaluate --fit`: the product score's weights, temperature, β, context mode and the
half-lives, searched on the validation split within a budget, then measured once on test.

What is searched is exactly what `profile rank` and the Python client compute
(`model.scoring.combine_parts` over the parts `score_candidates` takes: cosines to the
long and short horizons, the contextual cosine, the disliked clusters, log popularity):
each validation user's parts are computed once per half-life pair (and the contextual one
once per temperature and mode), so one setting of the weights costs one combine and one
ranking of the targets, about 0.1 s for 900 users and 1,700 items.

The search, seeded and deterministic:
1. the shipped defaults, then random settings (weights on the simplex, τ from a grid, β
   log-uniform, dislike weight, context mode) for part of the budget;
2. local refinement of the best: one coordinate at a time (move weight between two
   parts, scale β, step τ on its grid, change the dislike weight, flip the mode), an
   improvement is kept, the step shrinks after a run of failures;
3. half-lives, which change how profiles are folded (so each pair costs a fold of every
   user's history with clusters): successive halving over a list of pairs, each scored
   with the best weights on an eighth, a quarter, then half of the validation users, the
   better half and the default going on each round; a leader other than the default is
   confirmed on all users, and if it beats the default there a short refinement of the
   weights at that pair follows.
Every evaluation is one point of the curve reported in metrics.json (and fit_curve.png).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from interest_stream.schemas.events import Event
from interest_stream.streams.errors import ConfigurationError
from interest_stream.streams.interest.horizons import DAY, HOUR
from interest_stream.streams.interest.scoring import (
    CONTEXT_MODES,
    ProfileVectors,
    ScoreWeights,
    attended_cosines,
    combine_parts,
    mass_prior,
    scoring_space,
)
from interest_stream.streams.lab.evaluate.config import EvalConfig, FloatMatrix
from interest_stream.streams.lab.evaluate.data import Corpus
from interest_stream.streams.lab.evaluate.metrics import per_user_metrics
from interest_stream.streams.lab.evaluate.profiles import UserVectors, user_vectors
from interest_stream.streams.lab.evaluate.ranking import Popularity
from interest_stream.streams.lab.evaluate.split import UserSplit

TEMPERATURES = (0.02, 0.05, 0.1, 0.2, 0.5)
BETA_RANGE = (0.5, 32.0)
DISLIKE_MAX = 1.0
# The default pair first: it is always in the comparison.
HALF_LIFE_PAIRS: tuple[tuple[float, float], ...] = (
    (6 * HOUR, 30 * DAY),
    (1 * HOUR, 7 * DAY),
    (1 * HOUR, 30 * DAY),
    (24 * HOUR, 30 * DAY),
    (6 * HOUR, 7 * DAY),
    (6 * HOUR, 90 * DAY),
    (3 * DAY, 90 * DAY),
    (24 * HOUR, 365 * DAY),
)
# Users each round of the half-life comparison folds, as fractions of the validation
# split; the survivor is confirmed on all of it only when it is not the default pair.
HALVING_FRACTIONS = (0.125, 0.25, 0.5)


@dataclass(frozen=True)
class FitConfig:
    """The search's budget and objective."""

    budget: int = 160  # weight settings scored on the full validation split
    random_share: float = 0.5  # of the budget, before local refinement
    metric: str = "recall@20"
    half_lives: bool = True
    max_users: int = 3000  # validation users the search holds in memory (seeded sample)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.budget < 4:
            raise ConfigurationError("the fit budget must be at least 4 evaluations")
        if not 0.0 < self.random_share <= 1.0:
            raise ConfigurationError("the random share must be in (0, 1]")
        name, _, k = self.metric.partition("@")
        if name not in ("recall", "ndcg") or not k.isdigit() or int(k) < 1:
            raise ConfigurationError(f"fit metric must be recall@K or ndcg@K, not {self.metric}")

    @property
    def k(self) -> int:
        return int(self.metric.partition("@")[2])


class PartsScorer:
    """The score's parts for a fixed set of users (profiles folded with one half-life
    pair), and the mean validation metric of any `ScoreWeights` over them."""

    def __init__(
        self,
        splits: Sequence[UserSplit],
        corpus: Corpus,
        events: Sequence[Event],
        config: EvalConfig,
        center: FloatMatrix,
        tie_order: npt.NDArray[np.int64],
        half_lives: tuple[float, float],
        vectors: UserVectors | None = None,
    ) -> None:
        """`vectors`: the splits' profiles when already folded with these half-lives and
        clusters (evaluate's own test profiles), else they are folded here."""
        if vectors is None or len(vectors.views) != len(splits):
            params = replace(
                config.params, short_half_life_s=half_lives[0], long_half_life_s=half_lives[1]
            )
            vectors = user_vectors(
                splits, corpus, config, params=params, with_clusters=True, catalogue_center=center
            )
        items = corpus.item_vectors
        self.matrix = scoring_space(vectors.views[0], items, center)[0]
        self.profiles: list[ProfileVectors] = [v.centered(center) for v in vectors.views]
        users, n = len(splits), len(items)

        def part(vector: Callable[[ProfileVectors], npt.NDArray[np.float32] | None]) -> FloatMatrix:
            out = np.full((users, n), np.nan)
            for row, profile in enumerate(self.profiles):
                found = vector(profile)
                if found is not None:
                    out[row] = self.matrix @ found.astype(np.float64)
            return out

        self.long = part(lambda p: p.long)
        self.short = part(lambda p: p.short)
        self.dislike = np.full((users, n), np.nan)
        for row, profile in enumerate(self.profiles):
            if profile.disliked is not None and len(profile.disliked):
                disliked = profile.disliked.astype(np.float64).T
                self.dislike[row] = (self.matrix @ disliked).max(axis=1)
        self.share = np.array([[p.short_share] for p in self.profiles])
        popularity = Popularity.of(events, corpus, config)
        self.popularity = np.stack([popularity.before(s.cut) for s in splits])
        # x·c_k of every candidate and cluster, and each user's Gram matrix: the contextual
        # part for any temperature and mode is then O(k²) a candidate (attended_cosines).
        self._similarities: list[FloatMatrix | None] = []
        self._grams: list[FloatMatrix | None] = []
        for profile in self.profiles:
            centroids = profile.centroids.astype(np.float64)
            found = len(centroids) > 0
            self._similarities.append(self.matrix @ centroids.T if found else None)
            self._grams.append(centroids @ centroids.T if found else None)
        self._contexts: dict[tuple[float, str], FloatMatrix] = {}
        self._seen = [
            np.array([corpus.item_row[i] for i in s.seen if i in corpus.item_row], dtype=np.int64)
            for s in splits
        ]
        self._targets = [
            np.array([corpus.item_row[t] for t in s.targets], dtype=np.int64) for s in splits
        ]
        self.width = max(len(s.targets) for s in splits)
        self.tie_order = tie_order
        self.users = users

    def context(self, weights: ScoreWeights) -> FloatMatrix:
        """The contextual part for every user at this temperature and mode (cached)."""
        key = (weights.temperature, weights.context_mode)
        if key not in self._contexts:
            rows = np.full(self.long.shape, np.nan)
            for row, profile in enumerate(self.profiles):
                similarities, gram = self._similarities[row], self._grams[row]
                if similarities is None or gram is None:
                    continue
                prior = (
                    mass_prior(profile.cluster_weights) if weights.context_mode == "mass" else None
                )
                rows[row] = attended_cosines(similarities, gram, weights.temperature, prior)
            self._contexts[key] = rows
        return self._contexts[key]

    def ranks(self, weights: ScoreWeights) -> FloatMatrix:
        """Rank of each user's targets among all items, seen items excluded, ties broken by
        the fixed random item order: what `ranking.target_ranks` gives, user by user (no
        (targets x items) copy of the scores)."""
        total = combine_parts(
            self.long,
            self.short,
            self.context(weights),
            self.dislike,
            self.share,
            weights,
            popularity=self.popularity,
        )
        total = np.nan_to_num(total, nan=-1.0)
        ranks = np.full((self.users, self.width), np.inf)
        for row in range(self.users):
            scores = total[row]
            scores[self._seen[row]] = -np.inf
            targets = self._targets[row]
            own = scores[targets][:, None]
            above = (scores[None, :] > own).sum(axis=1)
            tied = scores[None, :] == own
            ties = tied.sum(axis=1) > 1
            if ties.any():
                earlier = tied[ties] & (
                    self.tie_order[None, :] < self.tie_order[targets[ties]][:, None]
                )
                above[ties] += earlier.sum(axis=1)
            ranks[row, : len(targets)] = 1.0 + above
        return ranks

    def per_user(self, weights: ScoreWeights, ks: Sequence[int]) -> dict[str, FloatMatrix]:
        return per_user_metrics(self.ranks(weights), ks)

    def value(self, weights: ScoreWeights, fit: FitConfig) -> float:
        return float(self.per_user(weights, [fit.k])[fit.metric].mean())


@dataclass
class FitResult:
    """What the search chose, what it followed, and the validation figures."""

    weights: ScoreWeights
    half_lives: tuple[float, float]
    metric: str
    validation_default: float
    validation_fitted: float
    curve: list[dict[str, Any]] = field(default_factory=list)
    evaluations: int = 0
    seconds: float = 0.0
    users: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "weights": asdict(self.weights),
            "half_lives_s": {"short": self.half_lives[0], "long": self.half_lives[1]},
            "validation_users": self.users,
            "validation": {
                "default": round(self.validation_default, 5),
                "fitted": round(self.validation_fitted, 5),
            },
            "evaluations": self.evaluations,
            "seconds": round(self.seconds, 1),
            "curve": self.curve,
        }


def _rounded(weights: ScoreWeights) -> ScoreWeights:
    """Weights as a profile file shows them: the parts summing to 1, three decimals."""
    parts = np.array([weights.long, weights.short, weights.context])
    parts = parts / parts.sum()
    return replace(
        weights,
        long=round(float(parts[0]), 3),
        short=round(float(parts[1]), 3),
        context=round(float(parts[2]), 3),
        dislike=round(weights.dislike, 3),
        beta=round(weights.beta, 3),
    )


def _random(rng: np.random.Generator) -> ScoreWeights:
    parts = rng.dirichlet((1.0, 1.0, 1.0))
    return _rounded(
        ScoreWeights(
            long=float(parts[0]) + 1e-3,
            short=float(parts[1]) + 1e-3,
            context=float(parts[2]) + 1e-3,
            temperature=float(rng.choice(TEMPERATURES)),
            dislike=float(rng.uniform(0.0, DISLIKE_MAX / 2)),
            beta=float(math.exp(rng.uniform(math.log(BETA_RANGE[0]), math.log(BETA_RANGE[1])))),
            context_mode=str(rng.choice(CONTEXT_MODES)),
        )
    )


def _neighbour(weights: ScoreWeights, rng: np.random.Generator, step: float) -> ScoreWeights:
    """One coordinate of `weights` moved by about `step` (0..1 scale)."""
    move = int(rng.integers(0, 6))
    if move in (0, 1):  # weight from one part to another
        names = ["long", "short", "context"]
        give, take = rng.choice(3, size=2, replace=False)
        parts = {n: getattr(weights, n) for n in names}
        amount = min(parts[names[give]], step * 0.5)
        parts[names[give]] -= amount
        parts[names[take]] += amount
        if sum(parts.values()) <= 0:
            return weights
        return _rounded(replace(weights, **parts))
    if move == 2:
        factor = math.exp(float(rng.choice((-1.0, 1.0))) * step * 1.5)
        beta = min(BETA_RANGE[1] * 2, max(BETA_RANGE[0] / 2, weights.beta * factor))
        return _rounded(replace(weights, beta=beta))
    if move == 3:
        index = min(
            range(len(TEMPERATURES)), key=lambda i: abs(TEMPERATURES[i] - weights.temperature)
        )
        index = min(len(TEMPERATURES) - 1, max(0, index + int(rng.choice((-1, 1)))))
        return replace(weights, temperature=TEMPERATURES[index])
    if move == 4:
        dislike = weights.dislike + float(rng.choice((-1.0, 1.0))) * step * DISLIKE_MAX / 2
        return _rounded(replace(weights, dislike=min(DISLIKE_MAX, max(0.0, dislike))))
    other = [m for m in CONTEXT_MODES if m != weights.context_mode]
    return replace(weights, context_mode=other[0])


def _point(step: int, phase: str, value: float, best: float, **extra: Any) -> dict[str, Any]:
    return {"step": step, "phase": phase, "value": round(value, 5), "best": round(best, 5), **extra}


def _compact(weights: ScoreWeights) -> dict[str, Any]:
    return {
        "w": [weights.long, weights.short, weights.context],
        "tau": weights.temperature,
        "beta": weights.beta,
        "dislike": weights.dislike,
        "mode": weights.context_mode,
    }


def _refine(
    scorer: PartsScorer,
    start: ScoreWeights,
    start_value: float,
    steps: int,
    fit: FitConfig,
    rng: np.random.Generator,
    curve: list[dict[str, Any]],
    phase: str,
) -> tuple[ScoreWeights, float]:
    best, best_value, step, misses = start, start_value, 0.5, 0
    tried = {best}
    evaluated = 0
    # `steps` evaluations; repeats are not evaluated again (bounded, should the space
    # around the best run out of new neighbours).
    for _ in range(steps * 5):
        if evaluated >= steps:
            break
        candidate = _neighbour(best, rng, step)
        if candidate in tried:  # a repeat costs nothing and teaches nothing: shrink
            misses += 1
        else:
            tried.add(candidate)
            evaluated += 1
            value = scorer.value(candidate, fit)
            if value > best_value:
                best, best_value, misses = candidate, value, 0
            else:
                misses += 1
            curve.append(_point(len(curve), phase, value, best_value, **_compact(candidate)))
        if misses >= 6:
            step, misses = max(0.05, step * 0.6), 0
    return best, best_value


def fit_scoring(
    val: Sequence[UserSplit],
    corpus: Corpus,
    events: Sequence[Event],
    config: EvalConfig,
    center: FloatMatrix,
    tie_order: npt.NDArray[np.int64],
    fit: FitConfig,
    on_stage: Callable[[str], None] = lambda _: None,
) -> FitResult:
    """Search the score's settings on the validation split (see the module docstring)."""
    started = time.perf_counter()
    rng = np.random.default_rng(fit.seed)
    users = list(val)
    if len(users) > fit.max_users:
        keep = np.sort(rng.choice(len(users), size=fit.max_users, replace=False))
        users = [users[i] for i in keep]
    default_pair = (config.params.short_half_life_s, config.params.long_half_life_s)
    scorers: dict[tuple[tuple[float, float], int], PartsScorer] = {}

    def scorer_for(pair: tuple[float, float], count: int) -> PartsScorer:
        # Nested user subsets in cut order (popularity is read forward in time).
        if (pair, count) not in scorers:
            chosen = sorted(order[:count])
            subset = [users[i] for i in chosen]
            scorers[(pair, count)] = PartsScorer(
                subset, corpus, events, config, center, tie_order, pair
            )
        return scorers[(pair, count)]

    order = [int(i) for i in rng.permutation(len(users))]
    on_stage(f"fitting the score on {len(users)} validation users (budget {fit.budget})")
    full = scorer_for(default_pair, len(users))
    curve: list[dict[str, Any]] = []
    defaults = ScoreWeights()
    default_value = full.value(defaults, fit)
    curve.append(_point(0, "default", default_value, default_value, **_compact(defaults)))
    best, best_value = defaults, default_value
    randoms = max(1, int(fit.budget * fit.random_share) - 1)
    for _ in range(randoms):
        candidate = _random(rng)
        value = full.value(candidate, fit)
        if value > best_value:
            best, best_value = candidate, value
        curve.append(_point(len(curve), "random", value, best_value, **_compact(candidate)))
    steps = fit.budget - 1 - randoms
    best, best_value = _refine(full, best, best_value, steps, fit, rng, curve, "refine")

    pair = default_pair
    if fit.half_lives:
        pairs = list(dict.fromkeys((default_pair, *HALF_LIFE_PAIRS)))
        for fraction in HALVING_FRACTIONS:
            count = max(1, round(fraction * len(users)))
            on_stage(f"half-lives: {len(pairs)} pairs on {count} users (successive halving)")
            values = {p: scorer_for(p, count).value(best, fit) for p in pairs}
            for p in pairs:
                curve.append(
                    _point(
                        len(curve),
                        "half-lives",
                        values[p],
                        best_value,
                        users=count,
                        short_h=p[0] / HOUR,
                        long_d=p[1] / DAY,
                    )
                )
            # The better half goes on, and the default pair always does (on a few users
            # a pair's figure is noisy: the default stays the reference to beat). Ties
            # keep the default: a change must earn its place.
            ranked = sorted(pairs, key=lambda p: (-values[p], p != default_pair))
            kept = ranked[: max(1, math.ceil(len(pairs) / 2))]
            pairs = kept if default_pair in kept else [*kept, default_pair]
            for key in [k for k in scorers if k[1] == count < len(users)]:
                del scorers[key]  # smaller subsets are not scored again
        leader = max(pairs, key=lambda p: (values[p], p == default_pair))
        if leader != default_pair:
            on_stage("half-lives: confirming the leader on all validation users")
            confirmed = scorer_for(leader, len(users)).value(best, fit)
            curve.append(
                _point(
                    len(curve),
                    "half-lives",
                    confirmed,
                    best_value,
                    users=len(users),
                    short_h=leader[0] / HOUR,
                    long_d=leader[1] / DAY,
                )
            )
            if confirmed > best_value:
                pair, best_value = leader, confirmed
                best, best_value = _refine(
                    scorers[(leader, len(users))],
                    best,
                    best_value,
                    max(4, fit.budget // 4),
                    fit,
                    rng,
                    curve,
                    "refine",
                )
    return FitResult(
        weights=best,
        half_lives=pair,
        metric=fit.metric,
        validation_default=default_value,
        validation_fitted=best_value,
        curve=curve,
        evaluations=len(curve),
        seconds=time.perf_counter() - started,
        users=len(users),
    )
