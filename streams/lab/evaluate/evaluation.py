"""The whole evaluation: blend weights on validation, the grid, test figures (`evaluate`)."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from interest_stream.encoders.base import Encoder
from interest_stream.schemas.events import Event
from interest_stream.streams.core.calibration import Catalogue, sample_texts
from interest_stream.streams.errors import ConfigurationError, SourceError
from interest_stream.streams.interest.horizons import (
    DAY,
    HOUR,
    InterestParams,
)
from interest_stream.streams.lab.evaluate.config import (
    BLENDS,
    GRID_LONG_HALF_LIVES,
    GRID_SHORT_HALF_LIVES,
    GRID_TYPE_WEIGHTS,
    LIFTS,
    EvalConfig,
    FloatMatrix,
    ProgressFn,
    base_strategy,
    no_progress,
)
from interest_stream.streams.lab.evaluate.data import (
    Corpus,
    EventLog,
    build_corpus,
    resolve_texts,
    text_of,
)
from interest_stream.streams.lab.evaluate.fit import FitConfig, FitResult, PartsScorer, fit_scoring
from interest_stream.streams.lab.evaluate.metrics import (
    Estimate,
    bootstrap_indices,
    estimate,
    lift,
    per_user_metrics,
)
from interest_stream.streams.lab.evaluate.profiles import positive_rule, user_vectors
from interest_stream.streams.lab.evaluate.ranking import Popularity, make_scorers, rank_targets
from interest_stream.streams.lab.evaluate.split import UserSplit, split_users, validation_splits


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
    fit: FitResult | None = None

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
                "centered_score": "cosine after taking the catalogue's mean item vector off"
                " the items and off the profiles (S - W x mean)",
            },
            "strategies": {s.name: s.as_dict() for s in self.strategies},
            "lifts": {
                name: {k: v.as_dict() for k, v in values.items()}
                for name, values in self.lifts.items()
            },
            "beta_selection": dict(self.betas),
            "grid": self.grid.as_dict() if self.grid else None,
            "fit": self.fit.as_dict() if self.fit else None,
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
    on_progress: ProgressFn = no_progress,
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
    popularity = Popularity.of(events, corpus, config)
    ranks = rank_targets(val, corpus, scorers, popularity, tie_order, on_progress, "validation")
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
    fit: FitConfig | None = None,
    cache_dir: Path | None = None,
    items: Mapping[str, str] | None = None,
    on_stage: Callable[[str], None] | None = None,
    on_progress: ProgressFn = no_progress,
) -> Evaluation:
    """Split, profile, rank and measure every configured strategy on `log`.

    `items` (item_id -> text, e.g. from `read_items`) supplies the texts items are ranked
    by and the texts of clicks that carry none; without it they come from the events.
    With `fit`, the product score's settings are searched on the validation split
    (lab/evaluate/fit.py) and the result is measured on test as the strategy "fitted".
    """
    config = config or EvalConfig()
    stage = on_stage or (lambda _: None)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    log = resolve_texts(log, items)
    if not log.events:
        raise SourceError(f"no valid events in {log.source} ({log.rejected} rejected)")
    stage(f"encoding texts with {encoder.model_id}")
    corpus = build_corpus(log.events, encoder, cache_dir, items, on_progress)
    timings["encode"] = time.perf_counter() - started
    if not corpus.item_ids:
        raise SourceError(f"no event in {log.source} carries an item_id: nothing to rank")
    # What `calibrate` keeps for a store fed this log (streams/core/calibration.py): the
    # catalogue's center and background cosine over a hash-chosen sample of its texts.
    sample = sample_texts(text_of(e) for e in log.events)
    catalogue = Catalogue.estimate(corpus.text_vectors[[corpus.text_row[t] for t in sample]])
    if config.calibrate_background:
        params = replace(config.params, cluster_background=catalogue.background)
        config = replace(config, params=params)

    mark = time.perf_counter()
    by_user: dict[str, list[Event]] = defaultdict(list)
    for event in log.events:
        by_user[event.user_id].append(event)
    positive = positive_rule(corpus, config)
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
        _choose_betas(val, corpus, log.events, config, tie_order, wanted_blends, on_progress)
        if wanted_blends
        else {}
    )
    timings["validation"] = time.perf_counter() - mark

    mark = time.perf_counter()
    stage(f"folding {len(test)} profiles")
    vectors = user_vectors(
        test,
        corpus,
        config,
        with_clusters=bool({"clusters", "product"} & set(config.strategies)),
        on_progress=on_progress,
        catalogue_center=catalogue.center.astype(np.float64),
    )
    timings["profiles"] = time.perf_counter() - mark

    mark = time.perf_counter()
    stage(f"ranking {len(corpus.item_ids)} items for {len(test)} users")
    chosen = {b: betas[b]["beta"] for b in wanted_blends}
    scorers = make_scorers(config.strategies, vectors, corpus.item_vectors, config, chosen)
    ranks = rank_targets(
        test,
        corpus,
        scorers,
        Popularity.of(log.events, corpus, config),
        tie_order,
        on_progress,
    )
    per_user = {name: per_user_metrics(r, config.ks) for name, r in ranks.items()}
    timings["ranking"] = time.perf_counter() - mark

    mark = time.perf_counter()
    results = tuple(
        StrategyResult(name, _estimates(per_user[name], draws), chosen.get(name))
        for name in config.strategies
    )
    lifts: dict[str, dict[str, Estimate]] = {}
    for a_base, b_base in LIFTS:
        # A blend with a fixed weight ('...@4') is compared as its blend would be.
        for a in (n for n in per_user if base_strategy(n) == a_base):
            for b in (n for n in per_user if base_strategy(n) == b_base):
                lifts[f"{a} vs {b}"] = {
                    m: lift(per_user[a][m], per_user[b][m], draws) for m in per_user[a]
                }
    timings["bootstrap"] = time.perf_counter() - mark

    fit_result = None
    if fit is not None:
        mark = time.perf_counter()
        center = catalogue.center.astype(np.float64)
        fit_result = fit_scoring(val, corpus, log.events, config, center, tie_order, fit, stage)
        stage("measuring the fitted score on the test split")
        default_pair = (config.params.short_half_life_s, config.params.long_half_life_s)
        folded = vectors if fit_result.half_lives == default_pair and vectors.views else None
        tested = PartsScorer(
            test, corpus, log.events, config, center, tie_order, fit_result.half_lives, folded
        )
        per_user["fitted"] = tested.per_user(fit_result.weights, config.ks)
        results = (*results, StrategyResult("fitted", _estimates(per_user["fitted"], draws)))
        for other in ("popular", "mean+popular", "product", "mean-centered+popular"):
            if other in per_user:
                lifts[f"fitted vs {other}"] = {
                    m: lift(per_user["fitted"][m], per_user[other][m], draws)
                    for m in per_user["fitted"]
                }
        timings["fit"] = time.perf_counter() - mark

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
        fit=fit_result,
    )
    frozen = {user: tuple(events) for user, events in by_user.items()}
    return Evaluation(report, corpus, frozen, tuple(test), per_user)
