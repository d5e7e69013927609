"""`bench workers`: the same workload drained by 1, then N worker processes of one consumer
group on this host, encoding excluded, side by side in one run.

This is how a user reads the per-core figures of `bench pipeline`: one worker process is one
Python interpreter, so it uses at most one core for its own work; more cores on a host are
used by more worker processes in the same group (docs/operations.md, "More than one worker
per host"). Whether N processes give N times the events depends on what else has to share
the cores (here: the Kafka broker and the Cassandra node), which is what this prints.
Registered on `bench` by lab/bench_commands.py.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections.abc import Sequence
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
    if not counts or min(counts) < 1:
        raise click.BadParameter(f"{value!r}: expected process counts such as 1,2")
    return counts


def bench_workers(
    settings: Settings,
    encoder: Encoder,
    shape_name: str,
    counts: Sequence[int],
    *,
    scale: float = 1.0,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Drain one shape's workload once per process count (vectors saved beforehand, so the
    encoder is not measured); figures per count and each count's speed-up over the first."""
    from interest_stream.streams.interest.sentiment import NEGATIVE_ANCHORS, POSITIVE_ANCHORS
    from interest_stream.streams.lab.pipeline import measured
    from interest_stream.streams.lab.pipeline.runs import drain
    from interest_stream.streams.lab.pipeline.shapes import SHAPES
    from interest_stream.streams.lab.precomputed import save_vectors

    if shape_name not in SHAPES:
        raise InterestStreamError(f"unknown shape {shape_name!r}: choose from {', '.join(SHAPES)}")
    shape = SHAPES[shape_name] if scale == 1.0 else SHAPES[shape_name].scaled(scale)
    events = shape.events()
    workdir = Path(tempfile.mkdtemp(prefix="interest-stream-bench-workers-"))
    texts = sorted({e["text"] for e in events})
    vectors_path = workdir / f"vectors-{shape.name}.npz"
    save_vectors(vectors_path, [*texts, *POSITIVE_ANCHORS, *NEGATIVE_ANCHORS], encoder)
    runs: dict[str, Any] = {}
    for count in counts:
        runs[str(count)] = measured(
            f"{count} worker process(es)",
            lambda count=count: drain(  # type: ignore[misc]
                settings,
                events,
                f"precomputed:{vectors_path}",
                f"{shape.name}w{count}",
                workdir,
                env,
                workers=count,
                join_first=True,
            ),
        )
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
        "runs": runs,
        "workdir": str(workdir),
    }


def _print(results: dict[str, Any]) -> None:
    out.print(
        f"{results['shape']}: {results['events']:,} events, {results['users']:,} users,"
        f" {results['partitions']} partitions, encoding excluded",
        highlight=False,
    )
    out.print(
        f"{'processes':>9}  {'events/s':>9}  {'speed-up':>8}  {'CPU-s per 1,000 events':<40}",
        highlight=False,
    )
    for count, figures in results["runs"].items():
        if "error" in figures:
            out.print(f"{count:>9}  failed: {figures['error']}", highlight=False)
            continue
        cpu = ", ".join(f"{k} {v:.2f}" for k, v in figures["cpu_s_per_1000_events"].items())
        speedup = figures["speedup"]
        out.print(
            f"{count:>9}  {figures['events_per_s']:>9,.0f}  "
            f"{'-' if speedup is None else f'{speedup:.2f}x':>8}  {cpu}",
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
@SCALE
@options.batch_size
@ANN_COPIES
@options.as_json("Print every figure as JSON.")
def bench_workers_command(
    brokers: str | None,
    cassandra_hosts: str,
    shape: str,
    counts: str,
    scale: float,
    batch_size: int | None,
    ann: bool,
    as_json: bool,
) -> None:
    """Events/s and CPU of 1, then N worker processes of one group on this host.

    Needs a running Kafka and Cassandra (deploy/local/up). Each run drains the same
    workload on fresh topics and a fresh keyspace, with vectors computed beforehand, so
    the figures are the workers' own cost. Exits 1 if a run failed.
    """
    quiet_run_queue_waits()
    process_counts = _counts(counts)
    settings = app.load_settings(
        brokers=brokers, store_url=f"cassandra://{cassandra_hosts}/bench", batch_size=batch_size
    )
    if max(process_counts) > settings.partitions:
        raise click.BadParameter(
            f"{max(process_counts)} processes but {settings.partitions} partitions: a process"
            " beyond the partition count gets nothing to do",
            param_hint="--counts",
        )
    env = {
        "INTEREST_STREAM_FLUSH_INTERVAL_MS": str(settings.flush_interval_ms),
        "INTEREST_STREAM_ANN_COPIES": "true" if ann else "false",
    }
    encoder = app.build_encoder(settings, "onnx")
    results = bench_workers(settings, encoder, shape, process_counts, scale=scale, env=env)
    results["ann_copies"] = ann
    if as_json:
        out.print_json(json.dumps(results))
    else:
        _print(results)
    failed = [count for count, figures in results["runs"].items() if "error" in figures]
    if failed:
        console.print(f"[red]failed:[/red] {', '.join(failed)} process(es)", highlight=False)
        sys.exit(1)
