"""`bench pipeline` and `bench soak`: the benchmarks that need running Kafka and Cassandra
(deploy/local/up, or any cluster the settings name). Registered on `bench` by
lab/bench_commands.py."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click

from interest_stream.streams import app
from interest_stream.streams.cli import options
from interest_stream.streams.cli.output import console, out
from interest_stream.streams.errors import ConfigurationError


class _RunQueueWaits(logging.Filter):
    """Drops kafka-python's "Task ... ran for N s ... blocking the event loop" warning.

    The benchmark's own producer and watcher log it many times a run on a loaded machine.
    Measured per slow step (README, `bench pipeline`): at most 17 ms of the thread's CPU,
    the rest run-queue wait for a core; the library times wall clock and cannot tell the
    two apart, so on saturated cores the warning is noise that floods stderr. Only that
    message is dropped, and only in the benchmark's process (the worker keeps its logs).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "blocking the event loop" not in record.getMessage()


def quiet_run_queue_waits() -> None:
    selector = logging.getLogger("kafka.net.selector")
    if not any(isinstance(f, _RunQueueWaits) for f in selector.filters):
        selector.addFilter(_RunQueueWaits())


CASSANDRA_HOSTS = click.option(
    "--cassandra",
    "cassandra_hosts",
    default="127.0.0.1:9042",
    show_default=True,
    help="Cassandra contact point(s) host:port (scratch keyspaces are made and dropped).",
)
SCALE = click.option(
    "--scale",
    type=float,
    default=1.0,
    show_default=True,
    help="Fraction of each shape's users (for a quick look; figures then mean less).",
)
ANN_COPIES = click.option(
    "--ann/--no-ann",
    default=True,
    show_default=True,
    help="Whether the workers write the SAI-indexed ANN copies (INTEREST_STREAM_ANN_COPIES):"
    " --no-ann shows what the vector-index inserts cost.",
)


@click.command("pipeline")
@options.brokers
@CASSANDRA_HOSTS
@click.option(
    "--shape",
    "shapes",
    type=click.Choice(["default", "wide", "both"]),
    default="both",
    show_default=True,
    help="default: 200 users x 50 events; wide: 6,000 users x 1-2 events, 10,000 titles.",
)
@SCALE
@options.batch_size
@click.option(
    "--flush-interval-ms",
    type=int,
    help=options.setting_help("Longest a fold waits for its flush.", "flush_interval_ms"),
)
@options.precision
@ANN_COPIES
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
    ann: bool,
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

    quiet_run_queue_waits()

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
        "INTEREST_STREAM_ANN_COPIES": "true" if ann else "false",
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
    results["ann_copies"] = ann
    if as_json:
        out.print_json(json.dumps(results))
    else:
        if not ann:
            out.print("ANN copies off (--no-ann): no vector-index inserts", highlight=False)
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


@click.command("soak")
@options.brokers
@CASSANDRA_HOSTS
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

    quiet_run_queue_waits()
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


@click.command("ann")
@CASSANDRA_HOSTS
@click.option("--users", type=int, default=3000, show_default=True, help="ANN copies to write.")
@click.option("--queries", type=int, default=200, show_default=True, help="Queries for recall.")
@click.option(
    "--similarity",
    type=click.Choice(["schema", "cosine", "dot_product"]),
    default="schema",
    show_default=True,
    help="schema: the indexes as the product creates them; else recreated with this function.",
)
@click.option(
    "--index-option",
    "index_options",
    multiple=True,
    metavar="KEY=VALUE",
    help="An SAI vector index option to recreate both indexes with (repeatable), e.g."
    " optimize_for=recall, or maximum_node_connections=8 and construction_beam_width=40"
    " (those two need the server started with"
    " -Dcassandra.sai.vector.allow_custom_parameters=true).",
)
@options.as_json("Print the figures as JSON.")
def bench_ann_command(
    cassandra_hosts: str,
    users: int,
    queries: int,
    similarity: str,
    index_options: tuple[str, ...],
    as_json: bool,
) -> None:
    """What the ANN copies' vector indexes cost Cassandra (CPU-s per 1,000 copies) and the
    recall@10 of `similar` against an exact scan of the same vectors."""
    from interest_stream.store.cassandra.schema import ann_index_options
    from interest_stream.streams.lab.bench_ann import bench_ann

    try:
        parsed = ann_index_options(",".join(index_options))
    except ConfigurationError as exc:
        raise click.BadParameter(str(exc), param_hint="--index-option") from None
    settings = app.load_settings(store_url=f"cassandra://{cassandra_hosts}/bench")
    figures = bench_ann(
        settings, users=users, queries=queries, similarity=similarity, index_options=parsed
    )
    if as_json:
        out.print_json(json.dumps(figures))
    else:
        out.print(
            f"{figures['similarity']} {figures['index_options'] or ''}:"
            f" {figures['users']:,} copies in {figures['write_seconds']} s"
            f" ({figures['failed_writes']} failed), Cassandra"
            f" {figures['cassandra_cpu_s_per_1000_copies']} CPU-s per 1,000 copies;"
            f" recall@10 of similar vs an exact scan ({figures['queries']} queries), asking"
            " the index for 10 / 20 / 40 users: "
            + " / ".join(f"{r:.3f}" for r in figures["recall_at_10_fetching"].values()),
            highlight=False,
        )
