"""Figures of an evaluation run: Recall@K per strategy, and a few users' drift over time.

matplotlib is an optional dependency (the `eval` extra) and is imported only when a figure
is drawn, with the Agg backend so that a server or CI job without a display can draw too.
Every figure has a title, labelled axes and a legend, and is written as a PNG next to
`metrics.json`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from interest_stream.streams.errors import MissingExtraError
from interest_stream.streams.lab.evaluate import Evaluation, Timeline, timeline_users, user_timeline
from interest_stream.streams.lab.evaluate.config import FloatMatrix

LABEL_CHARS = 42


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as exc:
        raise MissingExtraError("matplotlib", "eval") from exc
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _short(label: str) -> str:
    return label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1] + "…"


def plot_recall(evaluation: Evaluation, path: Path) -> Path:
    """Grouped bars: Recall@K of every strategy for every K, with 95% bootstrap CIs."""
    plt = _pyplot()
    report = evaluation.report
    ks = report.config.ks
    names = [s.name for s in report.strategies]
    width = 0.8 / len(ks)
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(8.0, 1.3 * len(names)), 5.0))
    colors = plt.get_cmap("viridis")(np.linspace(0.15, 0.85, len(ks)))
    for j, k in enumerate(ks):
        estimates = [s.metrics[f"recall@{k}"] for s in report.strategies]
        means = np.array([e.mean for e in estimates])
        errors = np.array(
            [[e.mean - e.low for e in estimates], [e.high - e.mean for e in estimates]]
        )
        ax.bar(
            x + (j - (len(ks) - 1) / 2) * width,
            means,
            width,
            yerr=errors,
            capsize=3,
            label=f"Recall@{k}",
            color=colors[j],
            error_kw={"elinewidth": 1.0, "ecolor": "black"},
        )
    ax.set_xticks(x, names, rotation=20, ha="right")
    ax.set_xlabel("strategy")
    ax.set_ylabel("Recall@K (mean over users)")
    ax.set_ylim(0, min(1.0, max(0.05, ax.get_ylim()[1] * 1.1)))
    ax.set_title(
        f"Recall@K per strategy, 95% bootstrap CI over {report.users['evaluated']:,} users\n"
        f"{Path(report.log.source).name} · {report.items:,} items · {report.model_id}",
        fontsize=11,
    )
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.legend(title="cut-off", loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _date_axis(ax: Any, times: FloatMatrix) -> None:
    """Dates people can place: the year is shown whenever the span leaves one day's year."""
    import matplotlib.dates as mdates

    first = datetime.fromtimestamp(float(min(times)), tz=UTC)
    last = datetime.fromtimestamp(float(max(times)), tz=UTC)
    span_days = (last - first).total_seconds() / 86400
    locator = mdates.AutoDateLocator(minticks=3, maxticks=7)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    if span_days <= 2:
        pattern = "%d %b %Y\n%H:%M" if first.year != last.year else "%d %b\n%H:%M"
    elif first.year != last.year or span_days > 300:
        pattern = "%d %b\n%Y" if span_days < 120 else "%b\n%Y"
    else:
        pattern = "%d %b"
    ax.xaxis.set_major_formatter(mdates.DateFormatter(pattern))  # type: ignore[no-untyped-call]
    ax.set_xlabel(
        f"time (UTC), {first:%d %b %Y} .. {last:%d %b %Y}"
        if first.year != last.year
        else f"time (UTC), {first:%Y}"
    )


def _cosine_limits(*series: FloatMatrix) -> tuple[float, float]:
    """The whole cosine range the data uses: negative cosines (a profile pushed away by
    dislikes) stay visible, and the axis never cuts a line."""
    values = np.concatenate([s[np.isfinite(s)] for s in series] or [np.zeros(1)])
    low = float(values.min()) if values.size else 0.0
    return (min(-0.05, low - 0.05), 1.05)


def _interests_panel(ax: Any, timeline: Timeline, when: list[datetime]) -> None:
    """Cluster shares when the profile has several clusters; with one (templated item texts
    collapse into one), the decayed mass by domain, which still shows tastes moving."""
    if timeline.cluster_weights.shape[1] >= 2:
        labels = [_short(label) for label in timeline.cluster_labels]
        ax.stackplot(when, 100 * timeline.cluster_shares.T, labels=labels, alpha=0.85)
        ax.set_ylim(0, 100)
        ax.set_ylabel("share of decayed mass (%)")
        ax.set_title(
            f"{timeline.user_id}: interest clusters, labelled by their final medoid", fontsize=10
        )
    elif timeline.domain_weights.shape[1]:
        shares = timeline.domain_shares
        ax.stackplot(when, 100 * shares.T, labels=list(timeline.domain_labels), alpha=0.85)
        ax.set_ylim(0, 100)
        ax.set_ylabel("share of decayed liking (%)")
        clusters = timeline.cluster_weights.shape[1]
        ax.set_title(
            f"{timeline.user_id}: {clusters} interest cluster{'s' if clusters != 1 else ''}"
            " at the end, so: decayed liking by domain",
            fontsize=10,
        )
    else:
        mass = timeline.cluster_weights.sum(axis=1)
        label = _short(timeline.cluster_labels[0]) if timeline.cluster_labels else "profile"
        ax.fill_between(when, mass, alpha=0.6, label=label)
        ax.set_ylabel("decayed mass")
        ax.set_title(f"{timeline.user_id}: one interest cluster, its decayed mass", fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)


def plot_timelines(timelines: Sequence[Timeline], path: Path) -> Path:
    """Per user: short- vs long-term drift (left) and interests over time (right)."""
    plt = _pyplot()

    rows = len(timelines)
    fig, axes = plt.subplots(
        rows, 2, figsize=(15.0, 3.8 * rows), squeeze=False, gridspec_kw={"width_ratios": [1, 1.5]}
    )
    for row, timeline in enumerate(timelines):
        when = [datetime.fromtimestamp(float(t), tz=UTC) for t in timeline.times]
        left, right = axes[row]
        left.axhline(0.0, color="grey", lw=0.8, alpha=0.6)
        left.plot(when, timeline.drift, color="tab:purple", lw=1.6, label="cos(short, long): drift")
        left.plot(
            when,
            timeline.short_to_final,
            color="tab:orange",
            lw=1.0,
            label="cos(short, final long)",
        )
        left.plot(
            when, timeline.long_to_final, color="tab:blue", lw=1.6, label="cos(long, final long)"
        )
        left.set_ylim(
            *_cosine_limits(timeline.drift, timeline.short_to_final, timeline.long_to_final)
        )
        left.set_ylabel("cosine")
        left.set_title(f"{timeline.user_id}: short- vs long-term profile", fontsize=10)
        _interests_panel(right, timeline, when)
        for ax in (left, right):
            _date_axis(ax, timeline.times)
            ax.grid(alpha=0.3)
    fig.suptitle("How profiles move: drift and interests over time", fontsize=12)
    # One legend for the left column, below the figure: inside a panel it hid the lines.
    fig.legend(
        *axes[0][0].get_legend_handles_labels(),
        loc="lower left",
        bbox_to_anchor=(0.02, 0.0),
        ncol=3,
        fontsize=9,
        frameon=False,
    )
    fig.tight_layout(rect=(0.0, 0.035, 1.0, 1.0))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_fit_curve(curve: Sequence[dict[str, Any]], metric: str, path: Path) -> Path:
    """The path `--fit` followed: every evaluation's validation value by phase, and the
    best so far (half-life rounds on subsets of users are marked apart)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9.0, 4.5))
    steps = np.array([p["step"] for p in curve])
    values = np.array([p["value"] for p in curve])
    phases = [p["phase"] for p in curve]
    for phase, marker in (("default", "s"), ("random", "."), ("refine", "o"), ("half-lives", "^")):
        mask = np.array([p == phase for p in phases])
        if mask.any():
            ax.scatter(steps[mask], values[mask], marker=marker, s=18, label=phase, alpha=0.7)
    searched = np.array([p != "half-lives" for p in phases])
    ax.step(
        steps[searched],
        [p["best"] for p in curve if p["phase"] != "half-lives"],
        where="post",
        color="black",
        linewidth=1.2,
        label="best so far",
    )
    ax.set_xlabel("evaluation")
    ax.set_ylabel(f"validation {metric}")
    ax.set_title(f"evaluate --fit: the search on the validation split ({metric})")
    ax.legend(loc="lower right", frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_plots(evaluation: Evaluation, out_dir: Path, users: int = 3) -> list[Path]:
    """Draw every figure of `evaluation` into `out_dir`; returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [plot_recall(evaluation, out_dir / "recall_at_k.png")]
    chosen = timeline_users(evaluation, users)
    if chosen:
        params = evaluation.report.config.params
        timelines = [
            user_timeline(evaluation.by_user[u], evaluation.corpus, params) for u in chosen
        ]
        written.append(plot_timelines(timelines, out_dir / "drift_timelines.png"))
    fit = evaluation.report.fit
    if fit is not None and fit.curve:
        written.append(plot_fit_curve(fit.curve, fit.metric, out_dir / "fit_curve.png"))
    return written
