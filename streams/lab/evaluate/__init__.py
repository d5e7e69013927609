"""Offline evaluation: do the profiles recommend what each user goes on to like?

Any event log in the event contract is validated with `parse_event`, split per user by time
(the last fraction of each user's positive events is held out), and every user's profile is
rebuilt from the events before that user's cut with the product's own pure functions
(`event_weight`, `SentimentScorer`, `fold_events`, `InterestState.fold`, `seed_ema`): this
module adds ranking and metrics, never a second copy of the interest math. All items are
ranked for every user with one matrix product per strategy (item vectors are encoded once),
items the user touched before the cut are excluded, and Recall@K, NDCG@K and MRR are reported
with bootstrap confidence intervals over users. Blend weights and the `--grid` sweep are
chosen on a validation split (the held-out fraction just before the test fraction), so the
test figures are never tuned on.

Modules: config, data, split, profiles, ranking, metrics, evaluation, timeline, report
(the figures are in plots), fit (`--fit`: the product score's settings searched on
validation).
"""

from interest_stream.streams.lab.evaluate.config import (
    BLENDS,
    GRID_LONG_HALF_LIVES,
    GRID_SHORT_HALF_LIVES,
    GRID_TYPE_WEIGHTS,
    LIFTS,
    STRATEGIES,
    USER_CHUNK,
    EvalConfig,
    FloatMatrix,
    parse_ks,
    parse_strategies,
)
from interest_stream.streams.lab.evaluate.data import (
    Corpus,
    EventLog,
    build_corpus,
    encode_once,
    events_from_dicts,
    item_texts,
    parse_records,
    read_events,
    read_items,
    resolve_texts,
    text_of,
)
from interest_stream.streams.lab.evaluate.evaluation import (
    Evaluation,
    EvaluationReport,
    GridResult,
    StrategyResult,
    evaluate,
    run_grid,
)
from interest_stream.streams.lab.evaluate.fit import FitConfig, FitResult, PartsScorer, fit_scoring
from interest_stream.streams.lab.evaluate.metrics import (
    Estimate,
    bootstrap_indices,
    estimate,
    lift,
    per_user_metrics,
)
from interest_stream.streams.lab.evaluate.profiles import (
    UserVectors,
    fold_history,
    fold_horizons,
    user_vectors,
    weighted_events,
)
from interest_stream.streams.lab.evaluate.ranking import (
    Chunk,
    Popularity,
    Scorer,
    make_scorers,
    rank_targets,
)
from interest_stream.streams.lab.evaluate.report import (
    fit_summary,
    planted_recovery,
    report_summary,
    report_tables,
    write_fitted_profile,
    write_metrics,
)
from interest_stream.streams.lab.evaluate.split import (
    UserSplit,
    is_positive,
    split_user,
    split_users,
    validation_splits,
    weigh,
)
from interest_stream.streams.lab.evaluate.timeline import Timeline, timeline_users, user_timeline

__all__ = [
    "BLENDS",
    "GRID_LONG_HALF_LIVES",
    "GRID_SHORT_HALF_LIVES",
    "GRID_TYPE_WEIGHTS",
    "LIFTS",
    "STRATEGIES",
    "USER_CHUNK",
    "Chunk",
    "Corpus",
    "Estimate",
    "EvalConfig",
    "Evaluation",
    "EvaluationReport",
    "EventLog",
    "FitConfig",
    "FitResult",
    "FloatMatrix",
    "GridResult",
    "PartsScorer",
    "Popularity",
    "Scorer",
    "StrategyResult",
    "Timeline",
    "UserSplit",
    "UserVectors",
    "bootstrap_indices",
    "build_corpus",
    "encode_once",
    "estimate",
    "evaluate",
    "events_from_dicts",
    "fit_scoring",
    "fit_summary",
    "fold_history",
    "fold_horizons",
    "is_positive",
    "item_texts",
    "lift",
    "make_scorers",
    "parse_ks",
    "parse_records",
    "parse_strategies",
    "per_user_metrics",
    "planted_recovery",
    "rank_targets",
    "read_events",
    "read_items",
    "report_summary",
    "report_tables",
    "resolve_texts",
    "run_grid",
    "split_user",
    "split_users",
    "text_of",
    "timeline_users",
    "user_timeline",
    "user_vectors",
    "validation_splits",
    "weigh",
    "weighted_events",
    "write_fitted_profile",
    "write_metrics",
]
