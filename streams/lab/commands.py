"""The lab's commands, `bench` (encoder, pipeline) and `evaluate`, which the CLI finds
through the `interest_stream.commands` entry points: the product never imports them."""

from __future__ import annotations

import json
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
    if "report_page" in extra:
        written.append(extra["report_page"])
    out.print("wrote " + ", ".join(escape(w) for w in written), highlight=False)


@click.group()
def bench() -> None:
    """Benchmarks that print ratios measured side by side in one run."""


@bench.command("encoder")
@click.option("--texts", type=int, default=2000, show_default=True, help="Corpus size per kind.")
@click.option(
    "--batch-size", type=int, default=64, show_default=True, help="Texts per encoder call."
)
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
def bench_encoder_command(texts: int, batch_size: int, as_json: bool) -> None:
    """Our ONNX encoder (fp32, int8, fp16 on GPU) against sentence-transformers."""
    from interest_stream.streams.lab.bench_encoder import bench_encoder, print_table

    settings = app.load_settings()
    rows = bench_encoder(texts=texts, batch_size=batch_size, model_dir=settings.model_dir)
    if as_json:
        out.print_json(json.dumps(rows, default=str))
    else:
        print_table(rows, out)


@bench.command("pipeline")
@options.brokers
@click.option(
    "--cassandra",
    "cassandra_hosts",
    default="127.0.0.1:9042",
    show_default=True,
    help="Cassandra contact point(s) host:port (scratch keyspaces are made and dropped).",
)
@click.option(
    "--shape",
    "shapes",
    type=click.Choice(["default", "wide", "both"]),
    default="both",
    show_default=True,
    help="default: 200 users x 50 events; wide: 6,000 users x 1-2 events, 10,000 titles.",
)
@click.option(
    "--scale",
    type=float,
    default=1.0,
    show_default=True,
    help="Fraction of each shape's users (for a quick look; figures then mean less).",
)
@options.batch_size
@click.option(
    "--flush-interval-ms",
    type=int,
    help=options.setting_help("Longest a fold waits for its flush.", "flush_interval_ms"),
)
@options.precision
@click.option(
    "--freshness-rate",
    type=float,
    default=500.0,
    show_default=True,
    help="Offered load (events/s) for the freshness measurement.",
)
@click.option(
    "--freshness-seconds",
    type=float,
    default=20.0,
    show_default=True,
    help="How long the freshness measurement offers load.",
)
@options.as_json("Print every figure as JSON.")
def bench_pipeline_command(
    brokers: str | None,
    cassandra_hosts: str,
    shapes: str,
    scale: float,
    batch_size: int | None,
    flush_interval_ms: int | None,
    precision: str | None,
    freshness_rate: float,
    freshness_seconds: float,
    as_json: bool,
) -> None:
    """Kafka -> worker -> Cassandra throughput, overhead ratios, bytes and freshness.

    Needs a running Kafka and Cassandra (deploy/local/up); every measurement uses fresh
    topics and a fresh keyspace and drops them afterwards. Exits 1 if a measurement failed.
    """
    import sys

    from interest_stream.streams.lab.pipeline import bench_pipeline
    from interest_stream.streams.lab.pipeline.report import print_report

    settings = app.load_settings(
        brokers=brokers,
        store_url=f"cassandra://{cassandra_hosts}/bench",
        batch_size=batch_size,
        flush_interval_ms=flush_interval_ms,
        precision=precision,
    )
    # The worker processes read their settings from the environment, as in production.
    env = {
        "INTEREST_STREAM_PRECISION": settings.precision,
        "INTEREST_STREAM_FLUSH_INTERVAL_MS": str(settings.flush_interval_ms),
    }
    encoder = app.build_encoder(settings, "onnx")
    results = bench_pipeline(
        settings,
        encoder,
        shapes=("default", "wide") if shapes == "both" else (shapes,),
        scale=scale,
        freshness_rate=freshness_rate,
        freshness_seconds=freshness_seconds,
        env=env,
    )
    if as_json:
        out.print_json(json.dumps(results))
    else:
        print_report(results, out)
    failed = [
        f"{shape} {stage}"
        for shape, figures in results["shapes"].items()
        for stage, value in figures.items()
        if isinstance(value, dict) and "error" in value
    ]
    if failed:
        console.print(f"[red]failed:[/red] {', '.join(failed)}", highlight=False)
        sys.exit(1)


@bench.command("profile")
@click.option(
    "--encoder",
    "encoder_kind",
    type=click.Choice(["onnx", "hashing"]),
    default="onnx",
    show_default=True,
    help="Vectors of the texts (sizes hardly depend on them; hashing is faster).",
)
@options.precision
@options.as_json("Print every figure as JSON.")
def bench_profile_command(
    encoder_kind: app.EncoderKind, precision: str | None, as_json: bool
) -> None:
    """Stored bytes per user from the real codec as events pile up: one domain, and a
    catalogue log over 18 genre domains. Exits 1 if a bound is exceeded."""
    import sys

    from rich.table import Table

    from interest_stream.streams.lab.profile_size import bench_profile

    settings = app.load_settings(precision=precision)
    results = bench_profile(app.build_encoder(settings, encoder_kind))
    if as_json:
        out.print_json(json.dumps(results))
    else:
        for key, title in (("one_domain", "one domain"), ("eighteen_domains", "18 genre domains")):
            table = Table(title=f"stored profile, {title} ({results['model_id']})")
            for column in (
                "events",
                "bytes",
                "horizons",
                "domains",
                "summary",
                "recent ids",
                "header",
                "domains kept",
                "summary entries",
                "clusters",
            ):
                table.add_column(column, justify="right")
            for row in results[key]:
                table.add_row(
                    *(
                        f"{row[k]:,}"
                        for k in (
                            "events",
                            "bytes",
                            "horizons",
                            "domains",
                            "summary",
                            "recent_ids",
                            "header",
                            "domain_count",
                            "summary_entries",
                            "clusters",
                        )
                    )
                )
            out.print(table)
        for name, target in results["targets"].items():
            verdict = "[green]met[/green]" if target["met"] else "[red]not met[/red]"
            out.print(
                f"{name}: {target['bytes']:,} bytes (bound {target['limit']:,}): {verdict}",
                highlight=False,
            )
    if not all(t["met"] for t in results["targets"].values()):
        sys.exit(1)


@bench.command("clusters")
@click.option("--users", type=int, default=200, show_default=True, help="Users per text kind.")
@click.option(
    "--store",
    "store_url",
    help="Instead: the distribution of cluster counts by events per user in an existing"
    " store (e.g. one `run` built from a real log).",
)
@options.precision
@options.as_json("Print every figure as JSON.")
def bench_clusters_command(
    users: int, store_url: str | None, precision: str | None, as_json: bool
) -> None:
    """Do the clusters fit the users? Planted interests (1-6 per user, plain and templated
    texts) against the liked clusters the embedded pipeline finds. Exits 1 below target."""
    import sys

    from interest_stream.streams.lab.cluster_count import (
        TARGET_WITHIN_ONE,
        bench_clusters,
        stored_distribution,
    )

    if store_url is not None:
        store = app.open_store(app.load_settings(store_url=store_url))
        try:
            found = stored_distribution(store)
        finally:
            store.close()
        if as_json:
            out.print_json(json.dumps(found))
            return
        out.print(f"{found['users']:,} users; liked clusters (count x users) by events:")
        for bucket, counts in found["clusters_by_events"].items():
            row = ", ".join(f"{k}x{n}" for k, n in counts.items())
            out.print(f"  {bucket:>8} events: {row}", highlight=False)
        return
    settings = app.load_settings(precision=precision)
    results = bench_clusters(app.build_encoder(settings, "onnx"), users=users)
    if as_json:
        out.print_json(json.dumps(results))
    else:
        for kind in ("plain", "templated"):
            r = results[kind]
            out.print(
                f"{kind}: {r['users']} users, background cosine {r['background']:.3f}:"
                f" cluster count within ±1 of the planted count for {r['within_one']:.0%}"
                f" (target {TARGET_WITHIN_ONE:.0%}), exact {r['exact']:.0%}; one planted"
                f" interest gives one cluster for {r['one_interest_one_cluster']:.0%}",
                highlight=False,
            )
            rows = "; ".join(
                f"{planted}: " + ", ".join(f"{found}x{n}" for found, n in counts.items())
                for planted, counts in r["found_by_planted"].items()
            )
            out.print(f"  planted -> found clusters (count x users): {rows}", highlight=False)
    if not results["target_met"]:
        sys.exit(1)


@bench.command("sentiment")
@click.option(
    "--data",
    "data_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder holding sentiment-labelled-sentences/ [default: $INTEREST_STREAM_LAB_DATA,"
    " else ../shared/data beside the repository].",
)
@click.option(
    "--precisions",
    default="fp32,int8",
    show_default=True,
    help="Encoder precisions to measure; the head is fitted on the first.",
)
@click.option(
    "--write-head",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also fit the head on every site and neutral text and write it here (the shipped"
    " one is streams/model/sentiment_head.json).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def bench_sentiment_command(
    data_dir: Path | None, precisions: str, write_head: Path | None, as_json: bool
) -> None:
    """Sentiment of unrated reviews on real labelled sentences: balanced accuracy per
    held-out site, neutral texts, negatives in an 80/20 stream, the head's cost.

    Fits the linear head on two sites and measures it on the third, for each site, next
    to the zero-shot anchors; reads the UCI Sentiment Labelled Sentences (Kotzias et al.,
    KDD 2015) from --data.
    """
    from interest_stream.encoders import load_encoder
    from interest_stream.streams.lab import sentiment as lab

    sites = lab.read_sites(data_dir or lab.default_data_dir())
    settings = app.load_settings()
    encoders = [
        load_encoder(precision=p.strip(), model_dir=settings.model_dir, cache_size=0)
        for p in precisions.split(",")
        if p.strip()
    ]
    prefix = encoders[0].model_id.split(":", 1)[0]
    if not as_json:
        console.print("[dim]encoding 3,000 sentences per precision and fitting 48 heads…[/dim]")
    figures = lab.measure(sites, encoders, prefix)
    texts = [t for s in sites for t in s.texts]
    figures["overhead"] = {e.model_id: lab.scoring_overhead(e, texts[:500]) for e in encoders}
    if write_head is not None:
        head, about = lab.fit_shipped_head(sites, encoders[0], prefix)
        write_head.write_text(lab.head_json(head, about), encoding="utf-8")
        figures["wrote_head"] = str(write_head)
    if as_json:
        out.print_json(json.dumps(figures))
    else:
        lab.print_figures(figures, out)


@bench.command("soak")
@options.brokers
@click.option(
    "--cassandra",
    "cassandra_hosts",
    default="127.0.0.1:9042",
    show_default=True,
    help="Cassandra contact point(s) host:port (a scratch keyspace is made and dropped).",
)
@click.option("--minutes", type=float, default=15.0, show_default=True, help="How long to run.")
@click.option("--rate", type=float, default=200.0, show_default=True, help="Events per second.")
@click.option(
    "--users", type=int, default=2000, show_default=True, help="Distinct users in the load."
)
@click.option(
    "--encoder",
    "encoder_kind",
    type=click.Choice(["onnx", "hashing"]),
    default="onnx",
    show_default=True,
    help="The worker's encoder (hashing: the model-free one, to soak the rest alone).",
)
@click.option(
    "--warmup-minutes",
    type=float,
    default=3.0,
    show_default=True,
    help="Memory before this is left out of the growth figure.",
)
@options.precision
@options.as_json("Print the figures as JSON at the end.")
def bench_soak_command(
    brokers: str | None,
    cassandra_hosts: str,
    minutes: float,
    rate: float,
    users: int,
    encoder_kind: str,
    warmup_minutes: float,
    precision: str | None,
    as_json: bool,
) -> None:
    """A steady load through the real servers for --minutes: every minute the worker's
    resident memory, freshness p99, consumer lag and errors; at the end the memory slope
    after the warm-up.

    Targets: no errors, lag bounded (at most 5 s of load at the end), memory growth under
    5% after the warm-up (judged when at least 5 minutes follow it). Exits 1 if one is missed.
    """
    from interest_stream.streams.lab.soak import Minute, soak, verdicts

    settings = app.load_settings(
        brokers=brokers, store_url=f"cassandra://{cassandra_hosts}/soak", precision=precision
    )

    def show(minute: Minute) -> None:
        if not as_json:
            fresh = "-" if minute.freshness_p99_ms is None else f"{minute.freshness_p99_ms:,.0f}"
            out.print(
                f"minute {minute.minute:>3}: offered {minute.offered:>8,}  "
                f"rss {minute.rss_mib or 0:>7,.1f} MiB  freshness p99 {fresh:>6} ms  "
                f"lag {minute.lag:>6,}  errors {minute.errors}",
                highlight=False,
            )

    workdir = Path(".bench")
    workdir.mkdir(exist_ok=True)
    figures = soak(
        settings,
        minutes=minutes,
        rate=rate,
        users=users,
        warmup_minutes=warmup_minutes,
        encoder=encoder_kind,
        workdir=workdir,
        env={"INTEREST_STREAM_PRECISION": settings.precision},
        on_minute=show,
    )
    figures["verdicts"] = verdicts(figures)
    if as_json:
        out.print_json(json.dumps(figures))
    else:
        memory = figures["memory"]
        if memory["slope_mib_per_min"] is not None:
            out.print(
                f"memory after {warmup_minutes:g} min: {memory['start_mib']:,} -> "
                f"{memory['end_mib']:,} MiB, slope {memory['slope_mib_per_min']:+.3f} MiB/min, "
                f"growth {memory['growth']:+.1%}",
                highlight=False,
            )
        for name, verdict in figures["verdicts"].items():
            colour = {"met": "green", "not met": "red"}.get(verdict, "yellow")
            out.print(f"{name}: [{colour}]{verdict}[/{colour}]", highlight=False)
    if "not met" in figures["verdicts"].values():
        sys.exit(1)
