"""The lab's `evaluate` command, which the CLI finds through the `interest_stream.commands`
entry points (with `bench`, lab/bench_commands.py): the product never imports them."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from interest_stream.streams import app
from interest_stream.streams.cli import options
from interest_stream.streams.cli.output import console, out
from interest_stream.streams.lab.evaluate.config import DEFAULT_STRATEGIES, STRATEGIES


@click.command()
@click.argument("events", required=False)
@click.option(
    "--holdout-fraction",
    type=float,
    default=0.2,
    show_default=True,
    help="Last fraction of each user's positive events held out for testing.",
)
@click.option(
    "--k",
    "ks",
    default="10,20,50",
    show_default=True,
    help="Cut-offs for Recall@K and NDCG@K, comma-separated; the first is the one blend"
    " weights are chosen on.",
)
@click.option(
    "--strategies",
    default=",".join(DEFAULT_STRATEGIES),
    show_default=True,
    help=f"Comma-separated strategies to rank with, from: {', '.join(STRATEGIES)}.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("interest-stream-eval"),
    show_default=True,
    help="Where metrics.json, report.html and the PNG figures go.",
)
@click.option(
    "--grid",
    is_flag=True,
    help="Also sweep half-lives and type weights on the validation split (slower).",
)
@click.option(
    "--fit",
    is_flag=True,
    help="Search the product score's weights, temperature, beta, context mode and half-lives"
    " on the validation split, measure them on test, and write a scoring profile file.",
)
@click.option(
    "--fit-budget",
    type=int,
    default=160,
    show_default=True,
    help="Weight settings the fit scores on the validation split (plus the half-life rounds).",
)
@click.option(
    "--fit-metric",
    default="recall@20",
    show_default=True,
    help="What the fit maximizes on validation: recall@K or ndcg@K.",
)
@click.option(
    "--fit-half-lives/--no-fit-half-lives",
    default=True,
    show_default=True,
    help="Also compare half-life pairs (each folds every validation history again).",
)
@click.option(
    "--scoring-profile",
    "profile_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where --fit writes the scoring profile [default: OUT/scoring-profile.json]; point"
    " INTEREST_STREAM_SCORING_PROFILE at it to rank with it.",
)
@click.option(
    "--positive-rating",
    type=float,
    default=4.0,
    show_default=True,
    help="A review counts as liked (a target, and popularity) from this rating up; an unrated"
    " review when its text sentiment reaches the same level.",
)
@click.option(
    "--min-history",
    type=int,
    default=3,
    show_default=True,
    help="Positive events a user needs before the cut to be evaluated (others are skipped"
    " and counted).",
)
@click.option(
    "--short-weight",
    type=float,
    default=0.5,
    show_default=True,
    help="Share of the short-term profile in the decay score: (1 - w) cos(long) + w cos(short).",
)
@click.option(
    "--ema-keep",
    type=float,
    default=0.9,
    show_default=True,
    help="k of the seed-ema baseline p <- k p + (1 - k) v.",
)
@click.option(
    "--short-half-life", help="Half-life of the short-term horizon, e.g. 6h [default 6h]."
)
@click.option(
    "--long-half-life", help="Half-life of the long-term horizon, e.g. 30d [default 30d]."
)
@options.precision
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Cache of encoded texts [default: eval-cache next to the models].",
)
@click.option(
    "--items",
    "items_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Item catalogue JSONL (item_id, text): texts to rank items by and to fill text-less"
    " clicks [default: texts from the events].",
)
@click.option(
    "--plots/--no-plots",
    default=True,
    show_default=True,
    help="Draw the figures and the one-page report.html (needs the eval extra).",
)
@click.option(
    "--demo-users",
    type=int,
    default=200,
    show_default=True,
    help="Users in the generated workload (used when no EVENTS file is given).",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print metrics.json to stdout; no progress bars."
)
@options.encoder
def evaluate(
    events: str | None,
    holdout_fraction: float,
    ks: str,
    strategies: str,
    out_dir: Path,
    grid: bool,
    fit: bool,
    fit_budget: int,
    fit_metric: str,
    fit_half_lives: bool,
    profile_path: Path | None,
    positive_rating: float,
    min_history: int,
    short_weight: float,
    ema_keep: float,
    short_half_life: str | None,
    long_half_life: str | None,
    precision: str | None,
    cache_dir: Path | None,
    items_path: Path | None,
    plots: bool,
    demo_users: int,
    as_json: bool,
    encoder_kind: app.EncoderKind,
) -> None:
    """Does it recommend better? Rank every item for each user at a time cut and measure.

    Splits EVENTS (JSONL in the event contract) per user by time, rebuilds profiles from
    what came before each cut with the product's own functions, and reports Recall@K,
    NDCG@K and MRR with bootstrap CIs for each strategy. Without EVENTS, evaluates a
    generated workload with planted, drifting interests and skewed item popularity.
    Exits 1 when more than 1% of the events were rejected for one reason.
    """
    from interest_stream.encoders.layout import default_model_dir
    from interest_stream.streams.demo import generate as generate_workload
    from interest_stream.streams.embedded import rejection_alarms
    from interest_stream.streams.lab import evaluate as ev
    from interest_stream.streams.lab.progress import StageBars

    settings = app.load_settings(
        precision=precision,
        short_half_life_s=app.half_life(short_half_life),
        long_half_life_s=app.half_life(long_half_life),
    )
    config = ev.EvalConfig(
        holdout_fraction=holdout_fraction,
        ks=ev.parse_ks(ks),
        strategies=ev.parse_strategies(strategies),
        positive_rating=positive_rating,
        min_history=min_history,
        short_weight=short_weight,
        ema_keep=ema_keep,
        params=settings.interest_params(),
    )
    fit_config = (
        ev.FitConfig(budget=fit_budget, metric=fit_metric, half_lives=fit_half_lives)
        if fit
        else None
    )
    workload = None
    if events is None:
        workload = generate_workload(users=demo_users, seed=7, popularity_skew=1.0)
        log = ev.events_from_dicts(workload.events, f"demo:{demo_users}-users-seed-7")
    else:
        log = ev.read_events(events, rules=settings.validation_rules())
    alarms = rejection_alarms(log.reject_reasons, log.records)
    for line in alarms:
        console.print(f"[bold red]warning:[/bold red] {escape(line)}", highlight=False)
    encoder = app.build_encoder(settings, encoder_kind)

    def stage(text: str) -> None:
        if not as_json:
            console.print(f"[dim]{escape(text)}…[/dim]", highlight=False)

    with StageBars(enabled=not as_json) as bars:
        result = ev.evaluate(
            log,
            encoder,
            config,
            grid=grid,
            fit=fit_config,
            cache_dir=cache_dir or default_model_dir().parent / "eval-cache",
            items=ev.read_items(items_path) if items_path is not None else None,
            on_stage=stage,
            on_progress=bars,
        )
    extra: dict[str, Any] = {}
    if alarms:
        extra["warnings"] = alarms
    if workload is not None:
        extra["planted_recovery"] = ev.planted_recovery(result, workload)
    if plots:
        from interest_stream.streams.errors import MissingExtraError
        from interest_stream.streams.lab.evaluate.plots import write_plots
        from interest_stream.streams.lab.evaluate.summary_page import write_report_page

        stage("drawing figures")
        try:
            figures = write_plots(result, out_dir)
            extra["figures"] = [str(p) for p in figures]
            extra["report_page"] = str(write_report_page(result, out_dir, figures, extra))
        except MissingExtraError as exc:
            # The metrics took minutes to compute: keep them, say what the figures need.
            console.print(f"[yellow]no figures:[/yellow] {escape(str(exc))}", highlight=False)
    if result.report.fit is not None:
        written = ev.write_fitted_profile(
            result.report, profile_path or out_dir / "scoring-profile.json"
        )
        extra["scoring_profile"] = str(written)
    metrics = ev.write_metrics(result.report, out_dir, extra)
    if as_json:
        out.print_json(metrics.read_text(encoding="utf-8"))
    else:
        _print_evaluation(result.report, extra, metrics)
    for line in alarms:
        console.print(f"[bold red]warning:[/bold red] {escape(line)}", highlight=False)
    if alarms:
        sys.exit(1)


def _print_evaluation(report: Any, extra: dict[str, Any], metrics: Path) -> None:
    from interest_stream.streams.lab import evaluate as ev

    for table in ev.report_tables(report):
        out.print(table)
    for line in ev.report_summary(report):
        out.print(escape(line), highlight=False)
    if "planted_recovery" in extra:
        r = extra["planted_recovery"]
        out.print(
            f"planted interests: top cluster planted for {r['top_cluster_is_planted']:.0%}, top"
            f" two for {r['top2_clusters_are_planted']:.0%}, short term nearest a current"
            f" interest for {r['short_term_matches_current_interest']:.0%} of {r['users']} users"
        )
    written = [str(metrics), *extra.get("figures", [])]
    if "scoring_profile" in extra:
        written.append(extra["scoring_profile"])
    if "report_page" in extra:
        written.append(extra["report_page"])
    out.print("wrote " + ", ".join(escape(w) for w in written), highlight=False)
