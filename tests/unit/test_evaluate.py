"""Offline evaluation: metrics by hand, a leak-free split, strategy ordering, plots, the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import click
import numpy as np
import pytest
from click.testing import CliRunner

from interest_stream.encoders.hashing import HashingEncoder
from interest_stream.streams.cli import main
from interest_stream.streams.demo import catalogue, generate
from interest_stream.streams.errors import ConfigurationError, SourceError
from interest_stream.streams.interest.horizons import HOUR
from interest_stream.streams.lab.evaluate import (
    EvalConfig,
    Evaluation,
    build_corpus,
    evaluate,
    events_from_dicts,
    fold_history,
    fold_horizons,
    parse_ks,
    parse_strategies,
    per_user_metrics,
    planted_recovery,
    read_events,
    read_items,
    split_user,
    user_vectors,
    validation_splits,
)

T0 = 1_780_000_000  # epoch seconds, well inside the accepted window
NOW = T0 + 400 * 24 * HOUR


def _event(n: int, user: str, hours: float, kind: str, text: str, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": f"{user}-{n}",
        "user_id": user,
        "ts": int((T0 + hours * HOUR) * 1000),
        "type": kind,
        "text": text,
        **extra,
    }


def _click(n: int, user: str, hours: float, item: str) -> dict[str, Any]:
    return _event(n, user, hours, "click", f"title of {item}", item_id=item)


@pytest.fixture(scope="module")
def drifting() -> Evaluation:
    """The demo's workload (planted drift, skewed popularity) on the hashing encoder."""
    workload = generate(users=120, seed=7, popularity_skew=1.0)
    log = events_from_dicts(workload.events, "drifting", now=NOW)
    return evaluate(log, HashingEncoder(), EvalConfig(bootstrap=500))


# --- metrics ------------------------------------------------------------------------------


def test_metrics_match_a_hand_computation():
    # user 0: targets at ranks 1 and 3; user 1: one target at rank 5.
    ranks = np.array([[1.0, 3.0], [5.0, np.inf]])
    m = per_user_metrics(ranks, [2, 5])
    assert m["recall@2"].tolist() == [0.5, 0.0]
    assert m["recall@5"].tolist() == [1.0, 1.0]
    ideal_two = 1.0 + 1.0 / math.log2(3)
    assert m["ndcg@2"][0] == pytest.approx(1.0 / ideal_two)
    assert m["ndcg@5"][0] == pytest.approx((1.0 + 1.0 / math.log2(4)) / ideal_two)
    assert m["ndcg@5"][1] == pytest.approx(1.0 / math.log2(6))
    assert m["ndcg@2"][1] == 0.0
    assert m["mrr"].tolist() == [1.0, 0.2]


def test_popularity_ranking_end_to_end_with_seen_items_excluded():
    """Others click a x3 and b x2 before u's cut; u clicked a before, so b comes first."""
    events = [_click(i, "other", i, "a") for i in range(3)]
    events += [_click(10 + i, "other", 3 + i, "b") for i in range(2)]
    events += [_click(20, "other", 5, "c")]
    events += [_click(30 + i, "u", 10 + i, item) for i, item in enumerate(["a", "d", "d"])]
    events += [_click(40, "u", 20, "b")]  # u's only held-out event
    log = events_from_dicts(events, now=NOW)
    config = EvalConfig(ks=(1, 2), strategies=("popular",), bootstrap=20, min_history=3)
    result = evaluate(log, HashingEncoder(), config)
    row = [s.user_id for s in result.splits].index("u")
    u = {name: values[row] for name, values in result.per_user["popular"].items()}
    # Ranking without a and d: b (2 clicks) then c (1 click), so b is at rank 1.
    assert u["recall@1"] == 1.0 and u["mrr"] == 1.0


def test_popularity_counts_only_events_before_the_users_cut():
    # c becomes popular only after u's cut: it must not outrank b (1 click before the cut).
    events = [_click(0, "other", 1, "b")]
    events += [_click(30 + i, "u", 10 + i, f"x{i}") for i in range(3)]
    events += [_click(40, "u", 20, "b")]
    events += [_click(50 + i, "late", 30 + i, "c") for i in range(5)]
    config = EvalConfig(ks=(1,), strategies=("popular",), bootstrap=20, min_history=3)
    result = evaluate(events_from_dicts(events, now=NOW), HashingEncoder(), config)
    row = [s.user_id for s in result.splits].index("u")
    assert result.per_user["popular"]["mrr"][row] == 1.0


# --- the split -----------------------------------------------------------------------------


def _user_events() -> list[dict[str, Any]]:
    events = [_click(i, "u", i, f"i{i}") for i in range(8)]
    events.append(
        _event(8, "u", 8.5, "review", "Awful, do not recommend i9", item_id="i9", rating=1)
    )
    events.append(_event(9, "u", 8.7, "query", "something to search"))
    events.append(_click(10, "u", 9, "i1"))  # re-click of a seen item: held out, not a target
    events.append(_click(11, "u", 10, "i10"))
    return events


def test_split_holds_out_the_last_positives_and_never_leaks():
    log = events_from_dicts(_user_events(), now=NOW)
    corpus = build_corpus(log.events, HashingEncoder())
    config = EvalConfig(holdout_fraction=0.2)

    def positive(e: Any) -> bool:
        return e.type == "click"

    split = split_user(log.events, 0.2, positive, min_history=3)
    assert not isinstance(split, str)
    # 10 positive clicks -> 2 held out: the re-click of i1 at 9h and i10 at 10h.
    assert split.cut == T0 + 9 * HOUR
    assert all(e.ts < split.cut for e in split.history)
    assert {e.event_id for e in split.history} == {f"u-{i}" for i in range(10)}
    assert split.targets == ("i10",)  # i1 was seen before the cut
    assert "i9" in split.seen  # a disliked item is seen too, never recommended

    # Profiles depend on the history only: rewriting everything from the cut on changes none.
    changed = [
        dict(e, text="completely different words") if e["event_id"] in {"u-10", "u-11"} else e
        for e in _user_events()
    ]
    log2 = events_from_dicts(changed, now=NOW)
    corpus2 = build_corpus(log2.events, HashingEncoder())
    split2 = split_user(log2.events, 0.2, positive, min_history=3)
    assert not isinstance(split2, str)
    a = user_vectors([split], corpus, config)
    b = user_vectors([split2], corpus2, config)
    for name in ("long", "short", "mean", "ema", "last", "centroids"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), atol=1e-9)


def test_events_at_the_cut_time_are_not_history():
    events = [_click(i, "u", i, f"i{i}") for i in range(4)]
    events.append(_event(9, "u", 3, "query", "same instant as the held-out click"))
    log = events_from_dicts(events, now=NOW)
    split = split_user(log.events, 0.25, lambda e: e.type == "click", min_history=3)
    assert not isinstance(split, str)
    assert split.cut == T0 + 3 * HOUR
    assert [e.event_id for e in split.history] == ["u-0", "u-1", "u-2"]


def test_users_with_too_little_history_are_skipped_with_a_reason():
    events = [_click(i, "u", i, f"i{i}") for i in range(3)]
    log = events_from_dicts(events, now=NOW)
    assert split_user(log.events, 0.2, lambda e: True, min_history=3) == "too few positive events"
    again = [_click(i, "v", i, "same") for i in range(5)]
    log = events_from_dicts(again, now=NOW)
    assert split_user(log.events, 0.2, lambda e: True, min_history=3) == "no new item held out"


def test_validation_split_lies_wholly_before_the_test_cut(drifting: Evaluation):
    config = drifting.report.config
    corpus = drifting.corpus

    def positive(e: Any) -> bool:
        return e.item_id is not None and e.type == "click"

    val = validation_splits(drifting.splits, config.holdout_fraction, positive, 3)
    cuts = {s.user_id: s.cut for s in drifting.splits}
    assert val and all(v.cut < cuts[v.user_id] for v in val)
    assert all(e.ts < cuts[v.user_id] for v in val for e in v.history)
    assert len(corpus.item_ids) == len(catalogue())


def test_horizons_for_the_grid_equal_the_products_fold(drifting: Evaluation):
    split = drifting.splits[0]
    params = drifting.report.config.params
    product = fold_history(split.history, drifting.corpus, params).state
    fast = fold_horizons(split.history, drifting.corpus, params)
    np.testing.assert_allclose(fast.long.decayed_sum, product.long.decayed_sum, atol=1e-9)
    np.testing.assert_allclose(fast.short.decayed_sum, product.short.decayed_sum, atol=1e-9)


# --- input handling ---------------------------------------------------------------------------


def test_rejects_and_duplicates_are_counted(tmp_path: Path):
    good = [_click(i, "u", i, f"i{i}") for i in range(3)]
    lines = [json.dumps(e) for e in good] + [json.dumps(good[0]), "{not json", '{"type": "click"}']
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    log = read_events(path, now=NOW)
    assert (log.records, len(log.events), log.rejected, log.duplicates) == (6, 3, 2, 1)


def test_missing_file_and_bad_options_are_project_errors(tmp_path: Path):
    with pytest.raises(SourceError, match="not found"):
        read_events(tmp_path / "nope.jsonl")
    with pytest.raises(ConfigurationError):
        parse_ks("10,ten")
    with pytest.raises(ConfigurationError):
        EvalConfig(strategies=("decay", "magic"))
    with pytest.raises(ConfigurationError):
        EvalConfig(holdout_fraction=1.0)


def test_text_less_clicks_take_their_items_text_from_the_catalogue_or_the_log(tmp_path: Path):
    events = [_click(i, "u", i, f"i{i}") for i in range(5)]
    bare = [
        {k: v for k, v in _click(10 + i, "u", 10 + i, f"i{i}").items() if k != "text"}
        for i in (1, 7)
    ]  # i1 has a text in the log, i7 has none anywhere
    catalogue = tmp_path / "items.jsonl"
    catalogue.write_text(json.dumps({"item_id": "i0", "text": "the catalogue title"}) + "\n")
    held_out = [_click(20, "u", 20, "i5")]
    log = events_from_dicts(events + bare + held_out, now=NOW)
    result = evaluate(
        log,
        HashingEncoder(),
        EvalConfig(strategies=("last",), bootstrap=20),
        items=read_items(catalogue),
    )
    assert result.report.log.unresolved == 1
    texts = {e.event_id: e.text for e in result.by_user["u"]}
    assert texts["u-11"] == "title of i1" and "u-17" not in texts
    row = result.corpus.item_text_rows[result.corpus.item_row["i0"]]
    assert result.corpus.text_vectors[row] == pytest.approx(
        HashingEncoder().encode(["the catalogue title"])[0]
    )


def test_encodings_are_cached_on_disk(tmp_path: Path):
    log = events_from_dicts(_user_events(), now=NOW)
    first = build_corpus(log.events, HashingEncoder(), tmp_path)
    second = build_corpus(log.events, HashingEncoder(), tmp_path)
    assert not first.from_cache and second.from_cache
    np.testing.assert_array_equal(first.text_vectors, second.text_vectors)


# --- does it recommend better? ----------------------------------------------------------------


def test_decay_beats_mean_and_popular_on_the_drifting_workload(drifting: Evaluation):
    report = drifting.report
    decay, mean, popular = (report.result(n).metrics for n in ("decay", "mean", "popular"))
    assert decay["ndcg@10"].mean > 1.2 * mean["ndcg@10"].mean
    assert decay["recall@50"].mean > 1.1 * mean["recall@50"].mean
    assert decay["ndcg@10"].mean > 1.4 * popular["ndcg@10"].mean
    assert decay["recall@50"].mean > 1.2 * popular["recall@50"].mean
    # Paired bootstrap: the lifts are clear, not noise.
    assert report.lifts["decay vs mean"]["recall@50"].low > 0
    assert report.lifts["decay+popular vs popular"]["ndcg@10"].low > 0.5
    assert report.lifts["decay+popular vs mean+popular"]["ndcg@10"].low > 0


def test_with_interests_changing_often_decay_leaves_mean_far_behind():
    workload = generate(users=60, seed=5, interest_changes=3)
    config = EvalConfig(strategies=("decay", "mean"), bootstrap=200)
    result = evaluate(events_from_dicts(workload.events, now=NOW), HashingEncoder(), config)
    lift = result.report.lifts["decay vs mean"]
    assert lift["recall@50"].low > 0.3 and lift["ndcg@10"].low > 0.3


def test_recovered_clusters_are_the_planted_interests(drifting: Evaluation):
    workload = generate(users=120, seed=7, popularity_skew=1.0)
    recovered = planted_recovery(drifting, workload)
    assert recovered["top_cluster_is_planted"] >= 0.9
    assert recovered["short_term_matches_current_interest"] >= 0.8


def test_blend_weight_is_chosen_on_validation(drifting: Evaluation):
    betas = drifting.report.betas
    for blend in ("decay+popular", "mean+popular"):
        curve = betas[blend]["validation"]
        best = max(curve, key=lambda b: (curve[b], -float(b)))
        assert betas[blend]["beta"] == float(best) and float(best) in drifting.report.config.betas


# --- generator knobs ------------------------------------------------------------------------


def test_generator_knobs_change_nothing_by_default_and_do_what_they_say():
    default = generate(users=5, seed=1)
    again = generate(users=5, seed=1, items_per_topic=None, popularity_skew=0.0)
    assert default.events == again.events and len(default.items) == 288
    big = generate(users=5, seed=1, items_per_topic=100)
    assert len(big.items) == 800 and len({i.text for i in big.items}) == 800
    skewed = generate(users=200, seed=1, popularity_skew=1.2)
    counts: dict[str, int] = {}
    for e in skewed.events:
        if e["type"] == "click":
            counts[e["item_id"]] = counts.get(e["item_id"], 0) + 1
    top = sorted(counts.values(), reverse=True)
    assert top[0] > 5 * np.median(top)
    phased = generate(users=3, seed=1, interest_changes=3)
    assert all(len(u.phases) == 4 and len(u.all_interests) == 5 for u in phased.users)


# --- outputs --------------------------------------------------------------------------------


def test_plots_are_written(drifting: Evaluation, tmp_path: Path):
    from interest_stream.streams.lab.evaluate.plots import write_plots

    files = write_plots(drifting, tmp_path, users=2)
    assert [f.name for f in files] == ["recall_at_k.png", "drift_timelines.png"]
    for f in files:
        assert f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f.stat().st_size > 20_000


def test_cli_writes_metrics_and_reports_a_missing_file_in_one_line(tmp_path: Path):
    runner = CliRunner()
    missing = runner.invoke(
        main, ["evaluate", str(tmp_path / "nope.jsonl"), "--encoder", "hashing"]
    )
    assert missing.exit_code == 2
    lines = missing.output.strip().splitlines()
    assert len(lines) == 1 and "events file not found" in lines[0]

    events = generate(users=30, seed=2, popularity_skew=1.0).events
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    out = tmp_path / "eval"
    args = ["evaluate", str(path), "--encoder", "hashing", "--out", str(out), "--no-plots"]
    result = runner.invoke(main, [*args, "--cache-dir", str(tmp_path / "cache"), "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert json.loads(result.output)["users"] == metrics["users"]
    assert set(metrics["strategies"]) >= {"decay", "popular", "decay+popular"}
    assert metrics["users"]["evaluated"] > 20
    assert "decay+popular vs mean+popular" in metrics["lifts"]

    bad = runner.invoke(main, [*args, "--k", "0"])
    assert bad.exit_code == 2 and "--k" in bad.output


# --- centred cosines, fixed blend weights -----------------------------------------------------


def test_a_centred_horizon_is_the_decayed_sum_of_centred_events():
    from interest_stream.streams.lab.evaluate.profiles import centered

    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(5, 8))
    weights = np.array([1.5, -0.75, 1.0, 0.5, 1.5])  # decayed weights, a dislike among them
    center = rng.normal(size=8)
    decayed_sum, total = weights @ vectors, float(weights.sum())
    expected = weights @ (vectors - center)
    np.testing.assert_allclose(centered(decayed_sum, total, center), expected, atol=1e-12)
    assert centered(None, 0.0, center) is None


def test_the_centred_blend_beats_popular_on_the_drifting_workload(drifting: Evaluation):
    lifts = drifting.report.lifts["decay-centered+popular vs popular"]
    assert lifts["recall@20"].low > 0.3 and lifts["ndcg@10"].low > 0.3
    assert drifting.report.betas["decay-centered+popular"]["beta"] > 0


def test_a_blend_weight_can_be_fixed_instead_of_chosen():
    assert parse_strategies("popular,decay-centered+popular@4") == (
        "popular",
        "decay-centered+popular@4",
    )
    for bad in ("decay@4", "decay+popular@x", "popular@1"):
        with pytest.raises(ConfigurationError):
            parse_strategies(bad)
    workload = generate(users=40, seed=3, popularity_skew=1.0)
    config = EvalConfig(strategies=("popular", "decay-centered+popular@4"), bootstrap=50)
    result = evaluate(events_from_dicts(workload.events, now=NOW), HashingEncoder(), config)
    assert result.report.result("decay-centered+popular@4").beta is None
    assert "decay-centered+popular@4 vs popular" in result.report.lifts


# --- real logs: old timestamps, rejects, options, the page -------------------------------------


def _shifted_log(tmp_path: Path, years_back: float, extra: list[str] = ()) -> Path:
    """The generated log moved `years_back` years into the past (1990s: real rating logs)."""
    from datetime import UTC, datetime

    from interest_stream.schemas.events import parse_timestamp

    shift = years_back * 365.25 * 24 * HOUR
    events = generate(users=30, seed=2, popularity_skew=1.0).events

    def moved(ts: str) -> str:
        return datetime.fromtimestamp(parse_timestamp(ts) - shift, UTC).isoformat()

    lines = [json.dumps({**e, "ts": moved(e["ts"])}) for e in events] + list(extra)
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_evaluate_accepts_a_1990s_log_by_default(tmp_path: Path):
    path = _shifted_log(tmp_path, 29)  # 1997
    out = tmp_path / "eval"
    result = CliRunner().invoke(
        main,
        ["evaluate", str(path), "--encoder", "hashing", "--out", str(out), "--no-plots", "--json"],
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["input"]["rejected"] == 0 and metrics["users"]["evaluated"] > 20
    assert "warnings" not in metrics


def test_evaluate_warns_and_fails_on_garbage_timestamps(tmp_path: Path):
    garbage = [
        json.dumps(
            {
                "event_id": f"g{i}",
                "user_id": "g",
                "ts": "soon",
                "type": "click",
                "text": "x",
                "item_id": "x",
            }
        )
        for i in range(60)
    ]
    path = _shifted_log(tmp_path, 0, garbage)
    out = tmp_path / "eval"
    result = CliRunner().invoke(
        main, ["evaluate", str(path), "--encoder", "hashing", "--out", str(out), "--no-plots"]
    )
    assert result.exit_code == 1
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert warnings and "rejected: field 'ts': Value error, must be RFC 3339" in warnings[0]
    metrics = json.loads((out / "metrics.json").read_text())  # the figures are still there
    assert metrics["warnings"] and metrics["input"]["rejected"] == 60


def test_every_evaluate_option_says_what_it_does():
    from interest_stream.streams.lab.bench_commands import bench
    from interest_stream.streams.lab.commands import evaluate as command

    commands = [command, *bench.commands.values()]
    for cmd in commands:
        for param in cmd.params:
            if isinstance(param, click.Option):
                assert param.help, f"{cmd.name} {param.opts} has no help"


def test_the_report_page_puts_figures_and_lifts_together(drifting: Evaluation, tmp_path: Path):
    from interest_stream.streams.lab.evaluate.plots import write_plots
    from interest_stream.streams.lab.evaluate.summary_page import write_report_page

    figures = write_plots(drifting, tmp_path, users=1)
    page = write_report_page(drifting, tmp_path, figures, {"warnings": ["2.0% of events <x>"]})
    text = page.read_text()
    assert text.count("<img") == 2 and "decay-centered+popular vs popular" in text
    assert "2.0% of events &lt;x&gt;" in text  # escaped
