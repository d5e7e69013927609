"""The `interest-stream` command line: one entry point for the embedded mode, the worker,
the encoder tools, evaluation and the users' side.

Each command reads settings once (environment, then flags), builds its parts and calls
into the library; errors the project raises on purpose become one red line on stderr and
exit code 2, never a traceback.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from encoders.base import Encoder
from streams.errors import InterestStreamError
from streams.settings import Settings, load_settings, parse_duration

console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)


class CliGroup(click.Group):
    """Turns the project's own errors into one readable line and exit code 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except InterestStreamError as exc:
            console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
            sys.exit(2)


@click.group(cls=CliGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def main(verbose: int) -> None:
    """interest-stream: live semantic interest profiles from clicks, reviews and queries.

    Settings come from INTEREST_STREAM_* environment variables; flags override them.
    """
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def build_encoder(settings: Settings, kind: str = "onnx") -> Encoder:
    """The encoder a command runs with: the exported ONNX model, the model-free hashing one,
    or `precomputed:PATH` (vectors saved beforehand; used by the pipeline benchmark)."""
    if kind.startswith("precomputed:"):
        from encoders.precomputed import PrecomputedEncoder

        return PrecomputedEncoder(Path(kind.split(":", 1)[1]))
    if kind == "hashing":
        from encoders.hashing import HashingEncoder

        return HashingEncoder()
    from encoders import load_encoder

    return load_encoder(
        precision=settings.precision,
        model_dir=settings.model_dir,
        cache_size=settings.encoder_cache_size,
    )


class _EncoderChoice(click.ParamType):
    name = "onnx|hashing|precomputed:PATH"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        if value in ("onnx", "hashing") or str(value).startswith("precomputed:"):
            return str(value)
        self.fail(f"{value!r} is not one of onnx, hashing, precomputed:PATH", param, ctx)


ENCODER_OPTION = click.option(
    "--encoder",
    "encoder_kind",
    type=_EncoderChoice(),
    default="onnx",
    show_default=True,
    help="onnx: the exported sentence encoder; hashing: model-free, for plumbing checks;"
    " precomputed:PATH: vectors saved beforehand (benchmarks).",
)


def _half_life(value: str | None) -> float | None:
    return None if value is None else parse_duration(value)


@main.command()
@click.argument("events", required=False)
@click.option("--store", "store_url", help="Profile store URL [env INTEREST_STREAM_STORE_URL].")
@click.option(
    "--rejects",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("interest-stream-rejects.jsonl"),
    show_default=True,
    help="Where rejected events go (JSONL with original bytes and reason).",
)
@click.option("--batch-size", type=int, help="Events per batch [default 256].")
@click.option("--precision", type=click.Choice(["auto", "fp32", "int8", "fp16"]))
@click.option("--short-half-life", help="e.g. 6h [default 6h].")
@click.option("--long-half-life", help="e.g. 30d [default 30d].")
@click.option(
    "--demo-users",
    type=int,
    default=60,
    show_default=True,
    help="Users in the bundled demo (used when no EVENTS file is given).",
)
@click.option("--show", type=int, default=5, show_default=True, help="Users to show at the end.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@ENCODER_OPTION
def run(
    events: str | None,
    store_url: str | None,
    rejects: Path,
    batch_size: int | None,
    precision: str | None,
    short_half_life: str | None,
    long_half_life: str | None,
    demo_users: int,
    show: int,
    as_json: bool,
    encoder_kind: str,
) -> None:
    """Build profiles from EVENTS (JSONL file, or - for stdin) into the store, no servers.

    Without EVENTS, runs the bundled demo: generated users whose interests drift between
    topics over four simulated weeks; the summary shows whether they were recovered.
    """
    from store import open_store
    from streams.core import BatchCore
    from streams.embedded import run_embedded
    from streams.sources import EventListSource, JsonlSource, Source
    from streams.workload import generate

    settings = load_settings(
        store_url=store_url,
        batch_size=batch_size,
        precision=precision,
        short_half_life_s=_half_life(short_half_life),
        long_half_life_s=_half_life(long_half_life),
    )
    workload = None
    source: Source
    if events is None:
        workload = generate(users=demo_users, days=28, events_per_user=60, seed=7, duplicates=0.02)
        source = EventListSource("demo:seed-7", workload.events)
        total: int | None = len(workload.events)
    else:
        jsonl = JsonlSource(events)
        source, total = jsonl, None
    encoder = build_encoder(settings, encoder_kind)
    store = open_store(settings.store_url, **_store_options(settings))
    core = BatchCore(
        encoder=encoder,
        store=store,
        params=settings.interest_params(),
        rules=settings.validation_rules(),
        include_vectors=settings.include_vectors,
    )
    try:
        with _Progress(total, enabled=not as_json) as advance:
            summary = run_embedded(
                source,
                core,
                batch_size=settings.batch_size,
                rejects_path=rejects,
                on_batch=lambda n, outcome: advance(n),
            )
        result: dict[str, Any] = {
            "source": source.name,
            "store": settings.store_url,
            "model_id": encoder.model_id,
            **summary.as_dict(),
        }
        if summary.rejected:
            result["rejects_file"] = str(rejects)
        shown = store.get(sorted(summary.users)[:show]) if show else {}
        if workload is not None:
            result["recovery"] = _demo_recovery(store, workload, encoder)
    finally:
        store.close()
    if as_json:
        out.print_json(json.dumps(result))
    else:
        _print_run_summary(result, shown)
    if summary.rejected:
        sys.exit(1)


def _store_options(settings: Settings) -> dict[str, Any]:
    if not settings.store_url.startswith("cassandra"):
        return {}
    return {"settings": settings}


class _Progress:
    """A rich progress bar with events/s that degrades to nothing for scripts."""

    def __init__(self, total: int | None, enabled: bool) -> None:
        self._enabled = enabled and console.is_terminal
        self._bar = Progress(
            TextColumn("[bold]events"),
            BarColumn(),
            TextColumn("{task.completed:,}/{task.total:,}" if total else "{task.completed:,}"),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            console=console,
            disable=not self._enabled,
        )
        self._total = total

    def __enter__(self) -> Callable[[int], None]:
        self._bar.start()
        task = self._bar.add_task("events", total=self._total, rate="")

        def advance(n: int) -> None:
            self._bar.advance(task, n)
            speed = self._bar.tasks[0].speed
            self._bar.update(task, rate=f"{speed:,.0f} ev/s" if speed else "")

        return advance

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()


def _demo_recovery(store: Any, workload: Any, encoder: Encoder) -> dict[str, Any]:
    import numpy as np

    from streams.workload import recovery

    by_topic: dict[str, list[str]] = {}
    for item in workload.items:
        by_topic.setdefault(item.topic, []).append(item.text)
    topic_vectors = {}
    for topic, texts in by_topic.items():
        mean = encoder.encode(texts).astype(np.float64).mean(axis=0)
        topic_vectors[topic] = mean / np.linalg.norm(mean)
    profiles = store.get([u.user_id for u in workload.users])
    return recovery(profiles, workload, topic_vectors).as_dict()


def _print_run_summary(result: dict[str, Any], shown: dict[str, Any]) -> None:
    out.print(
        f"[bold]{result['records']:,}[/bold] records from {result['source']}: "
        f"[green]{result['applied']:,} applied[/green], {result['duplicates']:,} duplicates "
        f"skipped, [red]{result['rejected']:,} rejected[/red]; "
        f"{result['users_updated']:,} users, {result['writes']:,} writes "
        f"in {result['seconds']:.1f} s ({result['events_per_s'] or 0:,.0f} events/s)"
    )
    out.print(
        f"encoder {result['model_id']}: {result['texts_encoded']:,} unique texts, "
        f"{result['encoder_texts_per_s'] or 0:,.0f} texts/s"
    )
    if result["rejected"]:
        reasons = ", ".join(f"{k} x{v}" for k, v in result["reject_reasons"].items())
        out.print(f"rejects ({reasons}) written to {result['rejects_file']}", highlight=False)
        for line in result["first_rejects"]:
            out.print(f"  {escape(line)}", highlight=False)
    if "recovery" in result:
        r = result["recovery"]
        out.print(
            f"demo: top interest is a planted one for {r['top_cluster_is_planted']:.0%} of "
            f"{r['users']} users, top two both planted for {r['top2_clusters_are_planted']:.0%}; "
            f"short-term profile nearest a current interest for "
            f"{r['short_term_matches_current_interest']:.0%}"
        )
    if shown:
        out.print(profiles_table(list(shown.values())))


def profiles_table(profiles: list[Any]) -> Table:
    table = Table(title="profiles", show_lines=False)
    table.add_column("user")
    table.add_column("version", justify="right")
    table.add_column("events", justify="right")
    table.add_column("top interests (weight)")
    table.add_column("drift", justify="right")
    for profile in profiles:
        labels = "\n".join(f"{c.label[:60]} ({c.weight:.2f})" for c in profile.clusters[:3])
        drift = profile.drift()
        table.add_row(
            profile.user_id,
            str(profile.version),
            str(profile.event_count),
            labels,
            "-" if drift is None else f"{drift:.2f}",
        )
    return table


@main.group()
def profile() -> None:
    """Read profiles from the store."""


@profile.command("get")
@click.argument("user_id")
@click.option("--store", "store_url", help="Profile store URL [env INTEREST_STREAM_STORE_URL].")
@click.option("--json", "as_json", is_flag=True, help="Print the profile-update record as JSON.")
@click.option("--vectors/--no-vectors", default=False, help="Include vectors in --json output.")
def profile_get(user_id: str, store_url: str | None, as_json: bool, vectors: bool) -> None:
    """Show one user's profile."""
    from schemas.updates import profile_update
    from store import open_store

    settings = load_settings(store_url=store_url)
    store = open_store(settings.store_url, **_store_options(settings))
    try:
        found = store.get([user_id]).get(user_id)
    finally:
        store.close()
    if found is None:
        raise InterestStreamError(f"no profile for user {user_id!r} in {settings.store_url}")
    if as_json:
        out.print_json(profile_update(found, include_vectors=vectors).model_dump_json())
    else:
        out.print(profiles_table([found]))


@main.command("export-encoder")
@click.option(
    "--precision", type=click.Choice(["fp32", "int8", "fp16"]), default="fp32", show_default=True
)
@click.option(
    "--model-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Output directory [env INTEREST_STREAM_MODEL_DIR, default ~/.cache/...].",
)
@click.option("--force", is_flag=True, help="Export again even if a valid export exists.")
@click.option("--json", "as_json", is_flag=True)
def export_encoder_command(
    precision: str, model_dir: Path | None, force: bool, as_json: bool
) -> None:
    """Export all-MiniLM-L6-v2 to ONNX once (needs the 'export' extra: torch, transformers)."""
    from encoders.export import export_encoder

    settings = load_settings(model_dir=model_dir)
    report = export_encoder(precision=precision, model_dir=settings.model_dir, force=force)
    data = report.as_dict() if hasattr(report, "as_dict") else vars(report)
    if as_json:
        out.print_json(json.dumps(data, default=str))
    else:
        out.print(" ".join(f"{k}={v}" for k, v in data.items()))


@main.command()
@click.option("--users", type=int, default=200, show_default=True)
@click.option("--days", type=int, default=28, show_default=True)
@click.option("--events-per-user", type=int, default=60, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option(
    "--duplicates",
    type=float,
    default=0.0,
    show_default=True,
    help="Fraction of events to repeat (redelivery practice).",
)
@click.option("--shuffle", is_flag=True, help="Write events in random order.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Output JSONL file [default: stdout].",
)
def generate(
    users: int,
    days: int,
    events_per_user: int,
    seed: int,
    duplicates: float,
    shuffle: bool,
    output: Path | None,
) -> None:
    """Generate a synthetic event log with planted, drifting interests (JSONL)."""
    import random

    from streams.workload import generate as generate_workload

    workload = generate_workload(
        users=users, days=days, events_per_user=events_per_user, seed=seed, duplicates=duplicates
    )
    events = list(workload.events)
    if shuffle:
        random.Random(seed).shuffle(events)
    lines = "".join(json.dumps(e) + "\n" for e in events)
    if output is None:
        sys.stdout.write(lines)
    else:
        output.write_text(lines, encoding="utf-8")
        console.print(f"wrote {len(events):,} events for {users} users to {output}")


@main.command()
@click.option("--brokers", help="Kafka bootstrap servers [env INTEREST_STREAM_BROKERS].")
@click.option("--store", "store_url", help="Profile store URL [env INTEREST_STREAM_STORE_URL].")
@click.option("--group", "consumer_group", help="Consumer group [default interest-stream].")
@click.option("--topic-prefix", help="Prefix of every topic name [default none].")
@click.option("--batch-size", type=int, help="Max events per batch [default 256].")
@click.option("--batch-wait-ms", type=int, help="Max wait to fill a batch [default 200].")
@click.option("--precision", type=click.Choice(["auto", "fp32", "int8", "fp16"]))
@click.option("--short-half-life", help="e.g. 6h [default 6h].")
@click.option("--long-half-life", help="e.g. 30d [default 30d].")
@click.option(
    "--loglevel",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
@ENCODER_OPTION
def worker(
    brokers: str | None,
    store_url: str | None,
    consumer_group: str | None,
    topic_prefix: str | None,
    batch_size: int | None,
    batch_wait_ms: int | None,
    precision: str | None,
    short_half_life: str | None,
    long_half_life: str | None,
    loglevel: str,
    encoder_kind: str,
) -> None:
    """Consume clicks, reviews and queries from Kafka; write profiles; publish updates.

    Offsets are committed only after the store and profile-updates hold the result; run
    `interest-stream init` once first so that the topics and the schema exist.
    """
    from store import open_store
    from streams.worker import run_worker

    settings = load_settings(
        brokers=brokers,
        store_url=store_url,
        consumer_group=consumer_group,
        topic_prefix=topic_prefix,
        batch_size=batch_size,
        batch_wait_ms=batch_wait_ms,
        precision=precision,
        short_half_life_s=_half_life(short_half_life),
        long_half_life_s=_half_life(long_half_life),
    )
    encoder = build_encoder(settings, encoder_kind)
    store = open_store(settings.store_url, **_store_options(settings))
    run_worker(settings, encoder, store, loglevel)


@main.group()
def bench() -> None:
    """Benchmarks that print ratios measured side by side in one run."""


@bench.command("encoder")
@click.option("--texts", type=int, default=2000, show_default=True, help="Corpus size per kind.")
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def bench_encoder_command(texts: int, batch_size: int, as_json: bool) -> None:
    """Our ONNX encoder (fp32, int8, fp16 on GPU) against sentence-transformers."""
    from encoders.bench import bench_encoder, print_table

    settings = load_settings()
    rows = bench_encoder(texts=texts, batch_size=batch_size, model_dir=settings.model_dir)
    if as_json:
        out.print_json(json.dumps(rows, default=str))
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
@click.option("--batch-size", type=int, help="Worker batch size [default 256].")
@click.option("--precision", type=click.Choice(["auto", "fp32", "int8", "fp16"]))
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

    from streams.bench_pipeline import bench_pipeline, print_report

    if precision:
        os.environ["INTEREST_STREAM_PRECISION"] = precision  # the worker processes inherit it
    settings = load_settings(
        brokers=brokers,
        store_url=f"cassandra://{cassandra_hosts}/bench",
        batch_size=batch_size,
        precision=precision,
    )
    encoder = build_encoder(settings, "onnx")
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


if __name__ == "__main__":
    main()
