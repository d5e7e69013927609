"""Planted-interest recovery on generated workloads, metrics.json and the printed tables."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from interest_stream.streams.interest.horizons import DAY, HOUR
from interest_stream.streams.lab.evaluate.evaluation import Evaluation, EvaluationReport
from interest_stream.streams.lab.evaluate.metrics import Estimate
from interest_stream.streams.lab.evaluate.profiles import fold_history


def planted_recovery(evaluation: Evaluation, workload: Any) -> dict[str, Any]:
    """On a generated workload, `recovery()` of the profiles after all of each user's events:
    are the top clusters planted interests, is the short term nearest a current one?"""
    from interest_stream.streams.demo import recovery

    corpus = evaluation.corpus
    by_topic: dict[str, list[int]] = defaultdict(list)
    for item in workload.items:
        if item.text in corpus.text_row:
            by_topic[item.topic].append(corpus.text_row[item.text])
    topic_vectors = {}
    for topic, rows in by_topic.items():
        mean = corpus.text_vectors[rows].astype(np.float64).mean(axis=0)
        topic_vectors[topic] = mean / np.linalg.norm(mean)
    params = evaluation.report.config.params
    profiles = {
        user: fold_history(events, corpus, params) for user, events in evaluation.by_user.items()
    }
    result: dict[str, Any] = asdict(recovery(profiles, workload, topic_vectors))
    return result


def write_metrics(report: EvaluationReport, out_dir: Path, extra: Mapping[str, Any]) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "metrics.json"
    path.write_text(json.dumps({**report.as_dict(), **extra}, indent=2) + "\n", encoding="utf-8")
    return path


def write_fitted_profile(report: EvaluationReport, path: Path) -> Path:
    """The fitted settings as a scoring profile file (streams/core/scoring_profile.py),
    with where they were fitted and what they measured on test as provenance."""
    from interest_stream.streams.core.scoring_profile import ScoringProfile, write_scoring_profile

    fit = report.fit
    if fit is None:
        raise ValueError("the evaluation ran without --fit")
    tested = report.result("fitted").metrics
    provenance: dict[str, Any] = {
        "source": report.log.source,
        "model_id": report.model_id,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "metric": fit.metric,
        "validation_users": fit.users,
        "validation": {
            "default": round(fit.validation_default, 5),
            "fitted": round(fit.validation_fitted, 5),
        },
        "test": {name: value.as_dict() for name, value in tested.items()},
        "test_lifts": {
            name: values[fit.metric].as_dict()
            for name, values in report.lifts.items()
            if name.startswith("fitted vs ") and fit.metric in values
        },
        "evaluations": fit.evaluations,
    }
    profile = ScoringProfile(
        weights=fit.weights,
        short_half_life_s=fit.half_lives[0],
        long_half_life_s=fit.half_lives[1],
        fitted=provenance,
    )
    return write_scoring_profile(profile, path)


def fit_summary(report: EvaluationReport) -> list[str]:
    """Plain lines on what --fit chose and what it bought on test."""
    fit = report.fit
    if fit is None:
        return []
    w = fit.weights
    metric = fit.metric
    lines = [
        f"fitted on {fit.users:,} validation users ({fit.evaluations} evaluations,"
        f" {fit.seconds:.0f} s): w_long {w.long:g}, w_short {w.short:g}, w_ctx {w.context:g},"
        f" tau {w.temperature:g}, beta {w.beta:g}, dislike {w.dislike:g}, context mode"
        f" {w.context_mode}; half-lives {fit.half_lives[0] / HOUR:g} h /"
        f" {fit.half_lives[1] / DAY:g} d; validation {metric} {fit.validation_default:.4f}"
        f" (defaults) -> {fit.validation_fitted:.4f}",
    ]
    for name, values in report.lifts.items():
        if name.startswith("fitted vs ") and metric in values:
            lift = values[metric]
            lines.append(
                f"test {metric} {name}: {lift.mean:+.1%} (95% CI {lift.low:+.1%}..{lift.high:+.1%})"
            )
    return lines


def _cell(value: Estimate, best: bool) -> str:
    mean = f"[bold green]{value.mean:.3f}[/]" if best else f"{value.mean:.3f}"
    interval = f"{value.low:.3f}-{value.high:.3f}".replace("0.", ".")
    return f"{mean}\n[dim]{interval}[/]"


def _lift_cell(value: Estimate) -> str:
    text = f"{value.mean:+.0%}\n{100 * value.low:+.0f}..{100 * value.high:+.0f}"
    if value.low > 0:
        return f"[green]{text}[/]"
    return f"[red]{text}[/]" if value.high < 0 else text


def report_tables(report: EvaluationReport) -> list[Any]:
    """Rich renderables for the terminal: strategies, lifts, and the grid when it ran.

    Each cell is the mean over users above its 95% interval, so that the table still fits
    an 80-column terminal with three cut-offs.
    """
    from rich import box
    from rich.table import Table

    config = report.config
    columns = [f"recall@{k}" for k in config.ks] + [f"ndcg@{config.primary_k}", "mrr"]
    users = report.users
    table = Table(
        title=(
            f"{users['evaluated']:,} users, {report.items:,} items, {report.model_id}:"
            " mean over users, 95% bootstrap CI below"
        ),
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    # Long strategy names fold rather than push the figures off an 80-column terminal.
    table.add_column("strategy", overflow="fold", max_width=16)
    for column in columns:
        table.add_column(column, justify="right", no_wrap=True)
    best = {c: max(s.metrics[c].mean for s in report.strategies) for c in columns}
    for result in report.strategies:
        cells = [_cell(result.metrics[c], result.metrics[c].mean == best[c]) for c in columns]
        table.add_row(result.name, *cells)
    tables: list[Any] = [table]
    if report.lifts:
        # One comparison a row, the interval under the lift: six comparisons and five
        # metrics still fit 80 columns.
        lifts = Table(
            title="relative lift of A over B (mean A / mean B - 1), paired bootstrap 95% CI",
            title_justify="left",
            box=box.SIMPLE_HEAD,
        )
        lifts.add_column("A vs B", overflow="fold", max_width=24)
        for column in columns:
            lifts.add_column(column, justify="right", no_wrap=True)
        for name, values in report.lifts.items():
            lifts.add_row(name, *[_lift_cell(values[column]) for column in columns])
        tables.append(lifts)
    if report.grid is not None:
        grid = report.grid
        sweep = Table(
            title=f"grid on the validation split ({grid.metric} of decay), best first",
            title_justify="left",
            box=box.SIMPLE_HEAD,
        )
        for column in ("short half-life", "long half-life", "type weights", grid.metric):
            sweep.add_column(column, justify="right")
        for row in grid.rows[:8]:
            sweep.add_row(
                f"{row['short_half_life_h']:g} h",
                f"{row['long_half_life_d']:g} d",
                row["type_weights"],
                f"{row[grid.metric]:.4f}",
            )
        tables.append(sweep)
    return tables


def report_summary(report: EvaluationReport) -> list[str]:
    """Plain lines under the tables: input counts, the grid's test check, timings."""
    log, users, t = report.log, report.users, report.timings
    lines = [
        f"input: {log.records:,} records, {len(log.events):,} valid, {log.rejected:,} rejected"
        + (
            f" ({', '.join(f'{k} x{v}' for k, v in log.reject_reasons.items())})"
            if log.rejected
            else ""
        )
        + f", {log.duplicates:,} duplicate ids dropped"
        + (
            f", {log.unresolved:,} text-less clicks on unknown items dropped"
            if log.unresolved
            else ""
        ),
        f"users: {users['evaluated']:,} evaluated of {users['total']:,}"
        + (
            f"; skipped: {', '.join(f'{k} x{v}' for k, v in users['skipped'].items())}"
            if users["skipped"]
            else ""
        )
        + f"; {users['targets_per_user']} held-out items per user; {users['validation']:,}"
        " users in the validation split",
    ]
    blends = [s for s in report.strategies if s.beta is not None]
    if blends:
        lines.append(
            "blend weights chosen on the validation split: "
            + ", ".join(f"{s.name} beta={s.beta:g}" for s in blends)
            + f" (log(1 + popularity) + beta * profile score, best {report.betas['metric']})"
        )
    if report.grid is not None:
        grid, metric = report.grid, report.grid.metric
        best = grid.best
        lines.append(
            f"grid best on validation: short {best['short_half_life_h']:g} h, long "
            f"{best['long_half_life_d']:g} d, weights {best['type_weights']}; on test {metric}"
            f" {grid.test_best[metric].mean:.4f} vs {grid.test_default[metric].mean:.4f} with"
            " the configured settings"
        )
    lines.extend(fit_summary(report))
    lines.append(
        "time: "
        + ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in t.items() if stage != "total")
        + f"; total {t['total']:.1f} s"
    )
    return lines
