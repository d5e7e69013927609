"""`bench workers`: the same workload drained by 1, then N worker processes of one consumer
group on this host, encoding excluded, side by side in one run.

This is how a user reads the per-core figures of `bench pipeline`: one worker process is
one Python interpreter, so its own Python work runs on about one core at a time; more
cores on a host are used by more worker processes in the same group (docs/operations.md,
"More than one worker per host"). Whether N processes give N times the events depends on
what else has to share the cores (here: the Kafka broker and the Cassandra node), whose
CPU this prints beside the workers'.
Registered on `bench` by lab/bench_commands.py.
"""

from __future__ import annotations

import functools
import json
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from interest_stream.encoders.base import Encoder
from interest_stream.streams import app
from interest_stream.streams.cli import options
from interest_stream.streams.cli.output import console, out
from interest_stream.streams.errors import InterestStreamError
from interest_stream.streams.lab.bench_servers import (
    ANN_COPIES,
    CASSANDRA_HOSTS,
    SCALE,
    quiet_run_queue_waits,
)
from interest_stream.streams.settings import Settings


def _counts(value: str) -> list[int]:
    try:
        counts = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1 or len(set(counts)) != len(counts):
        raise click.BadParameter(f"{value!r}: expected distinct process counts such as 1,2")
    return counts


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median events/s (the lower one of an even count), with every run's
    events/s beside it; the first failure if a run failed."""
    failed = [run for run in runs if "error" in run]
    if failed:
        return failed[0]
    ranked = sorted(runs, key=lambda run: run["events_per_s"] or 0.0)
    median = dict(ranked[(len(ranked) - 1) // 2])
    median["events_per_s_each_round"] = [run["events_per_s"] for run in runs]
    return median


def bench_workers(
    settings: Settings,
    encoder: Encoder,
    shape_name: str,
    counts: Sequence[int],
    *,
    rounds: int = 2,
    scale: float = 1.0,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Drain one shape's workload once per process count and round (vectors saved
    beforehand, so the encoder is not measured), the order of the counts reversed every
    other round; per count the median run, and its speed-up over the first count's."""
    from interest_stream.streams.interest.sentiment import NEGATIVE_ANCHORS, POSITIVE_ANCHORS
    from interest_stream.streams.lab.pipeline import measured
    from interest_stream.streams.lab.pipeline.runs import drain
    from interest_stream.streams.lab.pipeline.shapes import SHAPES
    from interest_stream.streams.lab.precomputed import save_vectors

    if shape_name not in SHAPES:
        raise InterestStreamError(f"unknown shape {shape_name!r}: choose from {', '.join(SHAPES)}")
    if max(counts) > settings.partitions:
        raise InterestStreamError(
            f"{max(counts)} processes but {settings.partitions} partitions: a process beyond"
            " the partition count gets nothing to do"
        )
    shape = SHAPES[shape_name] if scale == 1.0 else SHAPES[shape_name].scaled(scale)
    events = shape.events()
    workdir = Path(tempfile.mkdtemp(prefix="interest-stream-bench-workers-"))
    texts = sorted({e["text"] for e in events})
    vectors_path = workdir / f"vectors-{shape.name}.npz"
    save_vectors(vectors_path, [*texts, *POSITIVE_ANCHORS, *NEGATIVE_ANCHORS], encoder)
    each: dict[int, list[dict[str, Any]]] = {count: [] for count in counts}
    for round_ in range(rounds):
        # Alternate the order: a later run benefits from warmer servers.
        for count in counts if round_ % 2 == 0 else list(reversed(counts)):
            run = functools.partial(
                drain,
                settings,
                events,
                f"precomputed:{vectors_path}",
                f"{shape.name}w{count}r{round_}",
                workdir,
                env,
                workers=count,
                settle_first=True,
            )
            each[count].append(measured(f"{count} worker process(es), round {round_ + 1}", run))
    runs = {str(count): _median_run(found) for count, found in each.items()}
    first = runs[str(counts[0])].get("events_per_s")
    for figures in runs.values():
        rate = figures.get("events_per_s")
        figures["speedup"] = round(rate / first, 2) if rate and first else None
    return {
        "shape": shape.name,
        "events": len(events),
        "users": len({e["user_id"] for e in events}),
        "partitions": settings.partitions,
        "batch_size": settings.batch_size,
        "rounds": rounds,
        "runs": runs,
        "workdir": str(workdir),
    }


def _print(results: dict[str, Any]) -> None:
    out.print(
        f"{results['shape']}: {results['events']:,} events, {results['users']:,} users,"
        f" {results['partitions']} partitions, encoding excluded; the median of"
        f" {results['rounds']} round(s) a count",
        highlight=False,
    )
    out.print(
        f"{'processes':>9}  {'events/s':>9}  {'speed-up':>8}  {'writes/event':>12}"
        "  CPU-s per 1,000 events",
        highlight=False,
    )
    for count, figures in results["runs"].items():
        if "error" in figures:
            out.print(f"{count:>9}  failed: {figures['error']}", highlight=False)
            continue
        cpu = ", ".join(f"{k} {v:.2f}" for k, v in figures["cpu_s_per_1000_events"].items())
        speedup = figures["speedup"]
        each = ", ".join(f"{rate:,.0f}" for rate in figures["events_per_s_each_round"])
        out.print(
            f"{count:>9}  {figures['events_per_s']:>9,.0f}  "
            f"{'-' if speedup is None else f'{speedup:.2f}x':>8}  "
            f"{figures['writes_per_event']:>12.3f}  {cpu}  (each round: {each})",
            highlight=False,
        )


@click.command("workers")
@options.brokers
@CASSANDRA_HOSTS
@click.option(
    "--shape",
    type=click.Choice(["default", "wide"]),
    default="default",
    show_default=True,
    help="The workload (as in `bench pipeline`).",
)
@click.option(
    "--counts",
    default="1,2",
    show_default=True,
    help="Worker processes per run, comma-separated; speed-ups are over the first.",
)
@click.option(
    "--rounds",
    type=click.IntRange(1, 9),
    default=2,
    show_default=True,
    help="Runs per count, the order reversed every other round; the median is shown.",
)
@SCALE
@options.batch_size
@ANN_COPIES
@options.as_json("Print every figure as JSON.")
def bench_workers_command(
    brokers: str | None,
    cassandra_hosts: str,
    shape: str,
    counts: str,
    rounds: int,
    scale: float,
    batch_size: int | None,
    ann: bool,
    as_json: bool,
) -> None:
    """Events/s and CPU of 1, then N worker processes of one group on this host.

    Needs a running Kafka and Cassandra (deploy/local/up). Each run uses fresh topics and
    a fresh keyspace: the processes start and the group settles, they are paused while
    the workload is published, and the clock runs from their resume to the last applied
    event. Vectors are computed beforehand, so the encoder is not measured (in production
    it is the largest cost per event, and each process runs its own). Exits 1 if a run
    failed.
    """
    quiet_run_queue_waits()
    process_counts = _counts(counts)
    settings = app.load_settings(
        brokers=brokers, store_url=f"cassandra://{cassandra_hosts}/bench", batch_size=batch_size
    )
    env = {
        "INTEREST_STREAM_FLUSH_INTERVAL_MS": str(settings.flush_interval_ms),
        "INTEREST_STREAM_ANN_COPIES": "true" if ann else "false",
    }
    encoder = app.build_encoder(settings, "onnx")
    results = bench_workers(
        settings, encoder, shape, process_counts, rounds=rounds, scale=scale, env=env
    )
    results["ann_copies"] = ann
    if as_json:
        out.print_json(json.dumps(results))
    else:
        _print(results)
    failed = [count for count, figures in results["runs"].items() if "error" in figures]
    if failed:
        console.print(f"[red]failed:[/red] {', '.join(failed)} process(es)", highlight=False)
        sys.exit(1)
