"""`evaluate --fit`: the search is deterministic, never ends below the defaults on
validation, scores exactly what the product scores, and writes a scoring profile that
`profile rank` and the client read back."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from interest_stream.encoders.hashing import HashingEncoder
from interest_stream.streams.cli import main
from interest_stream.streams.core.scoring_profile import load_scoring_profile
from interest_stream.streams.demo import generate
from interest_stream.streams.errors import ConfigurationError
from interest_stream.streams.interest.horizons import HOUR
from interest_stream.streams.lab.evaluate import (
    EvalConfig,
    Evaluation,
    FitConfig,
    evaluate,
    events_from_dicts,
)

NOW = 1_780_000_000 + 400 * 24 * HOUR
STRATEGIES = ("popular", "mean+popular", "product")


@pytest.fixture(scope="module")
def fitted() -> Evaluation:
    workload = generate(users=80, seed=7, popularity_skew=1.0)
    log = events_from_dicts(workload.events, "drifting", now=NOW)
    config = EvalConfig(bootstrap=200, strategies=STRATEGIES)
    return evaluate(log, HashingEncoder(), config, fit=FitConfig(budget=24))


def test_the_fit_never_ends_below_the_defaults_and_reports_its_curve(fitted: Evaluation):
    fit = fitted.report.fit
    assert fit is not None
    assert fit.validation_fitted >= fit.validation_default
    curve = fit.curve
    assert curve[0]["phase"] == "default" and curve[0]["value"] == pytest.approx(
        fit.validation_default, abs=1e-5
    )
    phases = [p["phase"] for p in curve]
    assert {"random", "refine", "half-lives"} <= set(phases)
    bests = [p["best"] for p in curve if p["phase"] != "half-lives"]
    assert bests == sorted(bests)  # the best so far never goes down
    assert fit.half_lives in {(h[0], h[1]) for h in _pairs()}
    weights = fit.weights
    assert weights.long + weights.short + weights.context == pytest.approx(1.0, abs=2e-3)


def _pairs() -> tuple[tuple[float, float], ...]:
    from interest_stream.streams.lab.evaluate.fit import HALF_LIFE_PAIRS

    return HALF_LIFE_PAIRS


def test_the_fit_is_measured_on_test_with_lifts(fitted: Evaluation):
    report = fitted.report
    assert "fitted" in {s.name for s in report.strategies}
    for other in ("popular", "mean+popular", "product"):
        assert f"fitted vs {other}" in report.lifts
    document = report.as_dict()
    assert document["fit"]["weights"] == json.loads(json.dumps(document["fit"]["weights"]))
    assert "recall@20" in document["strategies"]["fitted"]


def test_the_fitters_arithmetic_is_the_products(fitted: Evaluation):
    """With the shipped defaults, the fitter's vectorised scorer ranks the test split
    exactly as the product strategy does (score_candidates user by user)."""
    from interest_stream.streams.core.calibration import SAMPLE, Catalogue
    from interest_stream.streams.interest.scoring import ScoreWeights
    from interest_stream.streams.lab.evaluate import PartsScorer, text_of

    corpus = fitted.corpus
    events = [e for user in fitted.by_user.values() for e in user]
    events.sort(key=lambda e: (e.ts, e.event_id))
    first = list(dict.fromkeys(text_of(e) for e in events))[:SAMPLE]
    center = Catalogue.estimate(corpus.text_vectors[[corpus.text_row[t] for t in first]]).center
    config = fitted.report.config
    tie_order = np.random.default_rng(config.seed).permutation(len(corpus.item_ids))
    scorer = PartsScorer(
        fitted.splits,
        corpus,
        events,
        config,
        center.astype(np.float64),
        tie_order.astype(np.int64),
        (config.params.short_half_life_s, config.params.long_half_life_s),
    )
    mine = scorer.per_user(ScoreWeights(), config.ks)
    product = fitted.per_user["product"]
    for metric in mine:
        np.testing.assert_allclose(mine[metric], product[metric])


def test_the_fit_is_deterministic():
    workload = generate(users=40, seed=3, popularity_skew=1.0)
    log = events_from_dicts(workload.events, "small", now=NOW)
    config = EvalConfig(bootstrap=50, strategies=("popular", "product"))
    fit = FitConfig(budget=8, half_lives=False)
    first = evaluate(log, HashingEncoder(), config, fit=fit).report.fit
    again = evaluate(log, HashingEncoder(), config, fit=fit).report.fit
    assert first is not None and again is not None
    assert first.weights == again.weights and first.curve == again.curve


def test_fit_options_are_checked():
    with pytest.raises(ConfigurationError, match="recall@K or ndcg@K"):
        FitConfig(metric="mrr")
    with pytest.raises(ConfigurationError, match="at least 4"):
        FitConfig(budget=2)


def test_cli_fit_writes_a_profile_that_rank_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    events = generate(users=30, seed=2, popularity_skew=1.0).events
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    out = tmp_path / "eval"
    args = [
        "evaluate",
        str(path),
        "--encoder",
        "hashing",
        "--out",
        str(out),
        "--no-plots",
        "--strategies",
        "popular,mean+popular,product",
        "--fit",
        "--fit-budget",
        "8",
        "--no-fit-half-lives",
        "--cache-dir",
        str(tmp_path / "cache"),
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "fitted on" in result.output and "test recall@20 fitted vs popular" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    profile_path = Path(metrics["scoring_profile"])
    assert profile_path == out / "scoring-profile.json"
    profile = load_scoring_profile(profile_path)
    assert profile.weights.__dict__ == metrics["fit"]["weights"]
    assert profile.fitted["test_lifts"]["fitted vs popular"]["mean"] == pytest.approx(
        metrics["lifts"]["fitted vs popular"]["recall@20"]["mean"]
    )

    # The profile drives ranking once configured.
    store = f"sqlite:///{tmp_path}/p.db"
    runner = CliRunner()
    ran = runner.invoke(main, ["run", str(path), "--store", store, "--encoder", "hashing"])
    assert ran.exit_code == 0, ran.output
    monkeypatch.setenv("INTEREST_STREAM_SCORING_PROFILE", str(profile_path))
    user = events[0]["user_id"]
    ranked = runner.invoke(
        main,
        [
            "profile",
            "score",
            user,
            "--store",
            store,
            "--encoder",
            "hashing",
            "--text",
            "x",
            "--json",
        ],
    )
    assert ranked.exit_code == 0, ranked.output
    assert json.loads(ranked.output)["weights"] == metrics["fit"]["weights"]


def test_the_curve_is_drawn(fitted: Evaluation, tmp_path: Path):
    from interest_stream.streams.lab.evaluate.plots import write_plots

    written = write_plots(fitted, tmp_path)
    assert tmp_path / "fit_curve.png" in written
    assert (tmp_path / "fit_curve.png").stat().st_size > 10_000
