"""The lab's commands, `bench` (encoder, pipeline) and `evaluate`, which the CLI finds
through the `interest_stream.commands` entry points: the product never imports them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from interest_stream.streams import app
from interest_stream.streams.cli import options
from interest_stream.streams.cli.output import console, out


@click.command()
@click.argument("events", required=False)
@click.option(
    "--holdout-fraction",
    type=float,
    default=0.2,
    show_default=True,
    help="Last fraction of each user's positive events held out for testing.",
)
@click.option("--k", "ks", default="10,20,50", show_default=True, help="Cut-offs for Recall/NDCG.")
@click.option(
    "--strategies",
    default="decay,clusters,seed-ema,mean,last,popular,decay+popular,mean+popular",
    show_default=True,
    help="Comma-separated strategies to rank with.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("interest-stream-eval"),
    show_default=True,
    help="Where metrics.json and the PNG figures go.",
)
@click.option("--grid", is_flag=True, help="Sweep half-lives and type weights on validation.")
@click.option("--positive-rating", type=float, default=4.0, show_default=True)
@click.option("--min-history", type=int, default=3, show_default=True)
@click.option("--short-weight", type=float, default=0.5, show_default=True)
@click.option("--ema-keep", type=float, default=0.9, show_default=True)
@click.option("--short-half-life", help="e.g. 6h [default 6h].")
@click.option("--long-half-life", help="e.g. 30d [default 30d].")
@options.precision
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Cache of encoded texts [default: next to the models].",
)
@click.option(
    "--items",
    "items_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Item catalogue JSONL (item_id, text): texts to rank items by and to fill text-less"
    " clicks [default: texts from the events].",
)
@click.option("--plots/--no-plots", default=True, show_default=True)
@click.option(
    "--demo-users",
    type=int,
    default=200,
    show_default=True,
    help="Users in the generated workload (used when no EVENTS file is given).",
)
@click.option("--json", "as_json", is_flag=True, help="Print metrics.json to stdout.")
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
    """
    from interest_stream.encoders.layout import default_model_dir
    from interest_stream.streams.demo import generate as generate_workload
    from interest_stream.streams.lab import evaluate as ev

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
    encoder = app.build_encoder(settings, encoder_kind)

    def stage(text: str) -> None:
        if not as_json:
            console.print(f"[dim]{text}…[/dim]")

    result = ev.evaluate(
        log,
        encoder,
        config,
        grid=grid,
        cache_dir=cache_dir or default_model_dir().parent / "eval-cache",
        items=ev.read_items(items_path) if items_path is not None else None,
        on_stage=stage,
    )
    extra: dict[str, Any] = {}
    if workload is not None:
        extra["planted_recovery"] = ev.planted_recovery(result, workload)
    if plots:
        from interest_stream.streams.errors import MissingExtraError
        from interest_stream.streams.lab.evaluate.plots import write_plots

        stage("drawing figures")
        try:
            extra["figures"] = [str(p) for p in write_plots(result, out_dir)]
        except MissingExtraError as exc:
            # The metrics took minutes to compute: keep them, say what the figures need.
            console.print(f"[yellow]no figures:[/yellow] {escape(str(exc))}", highlight=False)
    metrics = ev.write_metrics(result.report, out_dir, extra)
    if as_json:
        out.print_json(metrics.read_text(encoding="utf-8"))
        return
    for table in ev.report_tables(result.report):
        out.print(table)
    for line in ev.report_summary(result.report):
        out.print(line, highlight=False)
    if "planted_recovery" in extra:
        r = extra["planted_recovery"]
        out.print(
            f"planted interests: top cluster planted for {r['top_cluster_is_planted']:.0%}, top"
            f" two for {r['top2_clusters_are_planted']:.0%}, short term nearest a current"
            f" interest for {r['short_term_matches_current_interest']:.0%} of {r['users']} users"
        )
    out.print(f"wrote {metrics}" + "".join(f", {p}" for p in extra.get("figures", [])))


@click.group()
def bench() -> None:
    """Benchmarks that print ratios measured side by side in one run."""


@bench.command("encoder")
@click.option(
    "--texts",
    type=int,
    default=600,
    show_default=True,
    help="Texts in the mixed and short corpora; the long one gets a quarter.",
)
@click.option("--batch-size", type=int, default=64, show_default=True, help="CPU batch size.")
@click.option(
    "--repeats",
    type=int,
    default=5,
    show_default=True,
    help="Timed passes per engine, the fastest kept: more of them ride out busy neighbours.",
)
@click.option("--corpora", default="mixed,short,long", show_default=True, help="Comma-separated.")
@click.option(
    "--precisions",
    default="fp32,int8,fp16",
    show_default=True,
    help="Comma-separated; fp16 (and the GPU rows) run only where a GPU is usable.",
)
@click.option("--json", "as_json", is_flag=True)
def bench_encoder_command(
    texts: int, batch_size: int, repeats: int, corpora: str, precisions: str, as_json: bool
) -> None:
    """Our ONNX encoder against sentence-transformers on the same device, and against a
    bare session.run loop over the same pre-padded batches (host-side share)."""
    from interest_stream.streams.lab.bench_encoder import bench_encoder, print_table, summary

    settings = app.load_settings()

    def progress(message: str) -> None:
        if not as_json:
            console.print(f"[dim]{escape(message)}[/dim]")

    rows = bench_encoder(
        texts=texts,
        batch_size=batch_size,
        repeats=repeats,
        corpora=[c.strip() for c in corpora.split(",") if c.strip()],
        precisions=[p.strip() for p in precisions.split(",") if p.strip()],
        model_dir=settings.model_dir,
        progress=progress,
    )
    if as_json:
        out.print_json(json.dumps({"rows": rows, "summary": summary(rows)}, default=str))
    else:
        print_table(rows, out)


@bench.command("pipeline")
@click.option("--brokers", help="Kafka bootstrap servers [default 127.0.0.1:9092].")
@click.option(
    "--cassandra",
    "cassandra_hosts",
    default="127.0.0.1:9042",
    show_default=True,
    help="Cassandra contact point(s) host:port.",
)
@click.option("--users", type=int, default=200, show_default=True)
@click.option("--events-per-user", type=int, default=50, show_default=True)
@click.option("--batch-size", type=int, help="Worker batch size [default 1024].")
@options.precision
@click.option(
    "--freshness-rate",
    type=float,
    default=500.0,
    show_default=True,
    help="Offered load (events/s) for the freshness measurement.",
)
@click.option("--freshness-seconds", type=float, default=20.0, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def bench_pipeline_command(
    brokers: str | None,
    cassandra_hosts: str,
    users: int,
    events_per_user: int,
    batch_size: int | None,
    precision: str | None,
    freshness_rate: float,
    freshness_seconds: float,
    as_json: bool,
) -> None:
    """Kafka -> worker -> Cassandra throughput, overhead ratios and freshness, in one run.

    Needs a running Kafka and Cassandra (deploy/local/up); uses fresh topics and a fresh
    keyspace and drops them afterwards.
    """
    import os

    from interest_stream.streams.lab.bench_pipeline import bench_pipeline, print_report

    if precision:
        os.environ["INTEREST_STREAM_PRECISION"] = precision  # the worker processes inherit it
    settings = app.load_settings(
        brokers=brokers,
        store_url=f"cassandra://{cassandra_hosts}/bench",
        batch_size=batch_size,
        precision=precision,
    )
    encoder = app.build_encoder(settings, "onnx")
    results = bench_pipeline(
        settings,
        encoder,
        users=users,
        events_per_user=events_per_user,
        freshness_rate=freshness_rate,
        freshness_seconds=freshness_seconds,
    )
    if as_json:
        out.print_json(json.dumps(results))
    else:
        print_report(results, out)
