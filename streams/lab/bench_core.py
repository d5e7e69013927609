"""`bench core`: the batch core alone, the part of a worker's CPU per event that is ours.

It runs `BatchCore.fold` and `flush` over the same events as `bench pipeline`'s shapes,
as a worker would (Kafka-like provenance: each event on its user's partition of its type's
topic, batches of `batch_size`, one flush per batch as under backlog), with no Kafka,
Faust or Cassandra: vectors are looked up in a table encoded before the clock starts, and
the store is SQLite in a scratch directory. What it measures is process CPU time per event
(fold and flush: validation, reads, dedup, the fold, clustering, the profile codec, the
store write, the update records), so a change to the core shows here in seconds, without
the servers' noise; `bench pipeline` remains the figure for the whole worker.

To compare two commits, run this for each, one after the other on a quiet machine, with
several rounds: the median is the figure.
"""

from __future__ import annotations

import cProfile
import json
import pstats
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from interest_stream.encoders.base import Encoder
from interest_stream.schemas.events import TOPIC_OF_TYPE
from interest_stream.schemas.records import Provenance, RawRecord
from interest_stream.store import open_store
from interest_stream.streams import app
from interest_stream.streams.cli import options
from interest_stream.streams.cli.output import console, out
from interest_stream.streams.core.batch import BatchCore, BatchOutcome
from interest_stream.streams.core.routing import Routing
from interest_stream.streams.interest.sentiment import NEGATIVE_ANCHORS, POSITIVE_ANCHORS
from interest_stream.streams.lab.bench_servers import SCALE
from interest_stream.streams.lab.pipeline.shapes import SHAPES, Shape
from interest_stream.streams.lab.precomputed import PrecomputedEncoder, save_vectors
from interest_stream.streams.settings import Settings

PARTITIONS = 6


def kafka_records(
    events: Sequence[dict[str, Any]], partitions: int = PARTITIONS
) -> list[RawRecord]:
    """The events as a worker receives them: each on its user's partition (as Kafka's
    default partitioner puts it) of its type's topic, offsets counting per partition."""
    routing = Routing(partitions)
    next_offset: dict[str, int] = {}
    records = []
    for event in events:
        topic = TOPIC_OF_TYPE[event["type"]]
        partition = routing.owner(event["user_id"])
        source = f"{topic}:{partition}"
        offset = next_offset.get(source, 0)
        next_offset[source] = offset + 1
        value = json.dumps(event, separators=(",", ":")).encode()
        origin = Provenance(source, offset, topic, partition, event["user_id"].encode())
        records.append(RawRecord(value, origin))
    return records


def _core(settings: Settings, encoder: Encoder, store_url: str) -> BatchCore:
    store = open_store(store_url)
    return app.build_core(settings, encoder, store, partitions=PARTITIONS)


def run_core(
    settings: Settings,
    encoder: Encoder,
    records: Sequence[RawRecord],
    workdir: Path,
    *,
    profiler: cProfile.Profile | None = None,
) -> dict[str, Any]:
    """Fold and flush `records` in batches on a fresh store; CPU seconds and counts."""
    store_url = f"sqlite:///{workdir / f'core-{time.monotonic_ns()}.db'}"
    core = _core(settings, encoder, store_url)
    total = BatchOutcome()
    size = settings.batch_size
    cpu_started, wall_started = time.process_time(), time.perf_counter()
    if profiler is not None:
        profiler.enable()
    try:
        for start in range(0, len(records), size):
            total = total.merge(core.process(records[start : start + size]))
    finally:
        if profiler is not None:
            profiler.disable()
    cpu = time.process_time() - cpu_started
    wall = time.perf_counter() - wall_started
    core.store.close()
    events = len(records)
    return {
        "events": events,
        "applied": total.applied,
        "writes": total.writes,
        "rejects": len(total.rejects),
        "cpu_ms_per_event": round(1000 * cpu / events, 4),
        "wall_s": round(wall, 3),
        "stages_ms_per_event": {
            "read": round(1000 * total.read_seconds / events, 4),
            "fold": round(1000 * total.fold_seconds / events, 4),
            "write": round(1000 * total.write_seconds / events, 4),
        },
    }


def bench_core(
    settings: Settings,
    encoder: Encoder,
    *,
    shapes: Sequence[str] = ("default", "wide"),
    rounds: int = 3,
    scale: float = 1.0,
    profile_top: int = 0,
    progress: Callable[[str], None] = lambda message: None,
) -> dict[str, Any]:
    """Every shape `rounds` times; the median CPU per event, and the rounds."""
    results: dict[str, Any] = {"batch_size": settings.batch_size, "shapes": {}}
    with tempfile.TemporaryDirectory(prefix="interest-stream-bench-core-") as scratch:
        workdir = Path(scratch)
        for name in shapes:
            shape: Shape = SHAPES[name] if scale == 1.0 else SHAPES[name].scaled(scale)
            events = shape.events()
            texts = sorted({e["text"] for e in events})
            progress(f"{name}: encoding {len(texts):,} distinct texts before the clock starts")
            table = workdir / f"vectors-{name}.npz"
            # The sentiment anchors are encoded by the core too (for unrated reviews).
            save_vectors(table, [*texts, *POSITIVE_ANCHORS, *NEGATIVE_ANCHORS], encoder)
            table_encoder = PrecomputedEncoder(table)
            records = kafka_records(events)
            runs = []
            for round_ in range(rounds):
                progress(f"{name}: round {round_ + 1} of {rounds}, {len(records):,} events")
                runs.append(run_core(settings, table_encoder, records, workdir))
            cpu = [r["cpu_ms_per_event"] for r in runs]
            entry: dict[str, Any] = {
                "events": len(records),
                "users": shape.users,
                "cpu_ms_per_event": statistics.median(cpu),
                "rounds": runs,
            }
            if profile_top:
                progress(f"{name}: one more round under cProfile")
                profiler = cProfile.Profile()
                run_core(settings, table_encoder, records, workdir, profiler=profiler)
                entry["profile"] = top_functions(profiler, profile_top)
            results["shapes"][name] = entry
    return results


def top_functions(profiler: cProfile.Profile, count: int) -> list[dict[str, Any]]:
    """The functions with the most time of their own, with their share of the total."""
    stats = pstats.Stats(profiler)
    rows = stats.stats  # type: ignore[attr-defined]
    total = sum(own for _, _, own, _, _ in rows.values()) or 1.0
    ranked = sorted(rows.items(), key=lambda item: item[1][2], reverse=True)[:count]
    return [
        {
            "function": f"{Path(file).name}:{line}:{function}",
            "calls": calls,
            "own_share": round(own / total, 4),
            "cumulative_share": round(cumulative / total, 4),
        }
        for (file, line, function), (_, calls, own, cumulative, _) in ranked
    ]


@click.command("core")
@click.option(
    "--shapes",
    default="default,wide",
    show_default=True,
    help="Comma-separated workload shapes (those of `bench pipeline`).",
)
@click.option(
    "--rounds",
    type=click.IntRange(1, 15),
    default=3,
    show_default=True,
    help="Runs per shape on a fresh store each; the median is shown.",
)
@SCALE
@click.option(
    "--encoder",
    "encoder_kind",
    type=click.Choice(["onnx", "hashing"]),
    default="onnx",
    show_default=True,
    help="Vectors of the texts, computed before the clock starts (onnx: as in production,"
    " which clustering depends on; hashing: no model needed).",
)
@click.option(
    "--profile",
    "profile_top",
    type=click.IntRange(0, 200),
    default=0,
    show_default=True,
    help="Also run one round under cProfile and list this many functions by own time.",
)
@options.batch_size
@options.as_json("Print every figure as JSON.")
def bench_core_command(
    shapes: str,
    rounds: int,
    scale: float,
    encoder_kind: app.EncoderKind,
    profile_top: int,
    batch_size: int | None,
    as_json: bool,
) -> None:
    """CPU per event of the batch core alone (fold and flush), no servers needed.

    The part of a worker's CPU per event that is the project's own code: validation, reads,
    dedup, the fold, clustering, the profile codec, a SQLite write and the update records,
    encoding excluded, over `bench pipeline`'s shapes. `bench pipeline` measures the whole
    worker (Faust, Kafka and Cassandra included)."""
    names = [s.strip() for s in shapes.split(",") if s.strip()]
    unknown = [n for n in names if n not in SHAPES]
    if unknown:
        raise click.BadParameter(f"unknown shape {unknown[0]!r}: choose from {', '.join(SHAPES)}")
    settings = app.load_settings(batch_size=batch_size)
    encoder = app.build_encoder(settings, encoder_kind)

    def progress(message: str) -> None:
        if not as_json:
            console.print(f"[dim]{escape(message)}[/dim]")

    results = bench_core(
        settings,
        encoder,
        shapes=names,
        rounds=rounds,
        scale=scale,
        profile_top=profile_top,
        progress=progress,
    )
    results["encoder"] = encoder.model_id
    if as_json:
        out.print_json(json.dumps(results))
        return
    for name, entry in results["shapes"].items():
        rounds_text = ", ".join(f"{r['cpu_ms_per_event']:.3f}" for r in entry["rounds"])
        out.print(
            f"{name}: {entry['cpu_ms_per_event']:.3f} ms CPU per event (median of {rounds_text});"
            f" {entry['events']:,} events, {entry['users']:,} users,"
            f" {entry['rounds'][0]['writes']:,} profile writes",
            highlight=False,
        )
        for row in entry.get("profile", []):
            out.print(
                f"  {row['own_share']:6.1%} own {row['cumulative_share']:6.1%} cum"
                f"  {row['calls']:>9,}  {row['function']}",
                highlight=False,
            )
