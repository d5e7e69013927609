"""`run` (the embedded mode: a file, stdin or the bundled demo into the store, no servers)
and `generate` (synthetic event logs with planted interests)."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from interest_stream.encoders.base import Encoder
from interest_stream.store.base import ProfileStore
from interest_stream.streams import app
from interest_stream.streams.cli import options
from interest_stream.streams.cli.group import main
from interest_stream.streams.cli.output import EventProgress, console, out, profiles_table
from interest_stream.streams.core.sources import Source
from interest_stream.streams.errors import InterestStreamError


@main.command()
@click.argument("events", required=False)
@options.store
@click.option(
    "--rejects",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("interest-stream-rejects.jsonl"),
    show_default=True,
    help="Where rejected events go (JSONL with original bytes and reason).",
)
@options.batch_size
@options.precision
@options.half_lives
@click.option(
    "--demo-users",
    type=int,
    default=60,
    show_default=True,
    help="Users in the bundled demo (used when no EVENTS file is given).",
)
@click.option("--show", type=int, default=5, show_default=True, help="Users to show at the end.")
@click.option(
    "--items",
    "items_path",
    type=click.Path(dir_okay=False),
    help="Item catalogue JSONL (item_id, text, domain) loaded first, so clicks may"
    " carry only an item_id.",
)
@options.as_json("Print the summary as JSON.")
@options.encoder
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
    items_path: str | None,
    as_json: bool,
    encoder_kind: app.EncoderKind,
) -> None:
    """Build profiles from EVENTS (JSONL file, or - for stdin) into the store, no servers.

    Without EVENTS, runs the bundled demo: generated users whose interests drift between
    topics over four simulated weeks; the summary shows whether they were recovered.
    """
    from interest_stream.streams.core.sources import EventListSource, JsonlSource
    from interest_stream.streams.demo import generate as generate_workload
    from interest_stream.streams.embedded import DistinctTexts, rejection_alarms, run_embedded

    settings = app.load_settings(
        store_url=store_url,
        batch_size=batch_size,
        precision=precision,
        short_half_life_s=app.half_life(short_half_life),
        long_half_life_s=app.half_life(long_half_life),
    )
    workload = None
    source: Source
    total: int | None = None
    if events is None:
        workload = generate_workload(
            users=demo_users, days=28, events_per_user=60, seed=7, duplicates=0.02
        )
        source = EventListSource("demo:seed-7", workload.events)
        total = len(workload.events)
    else:
        source = JsonlSource(events)
    encoder = app.build_encoder(settings, encoder_kind)
    store = app.open_store(settings)
    try:
        # Before the first event, from the whole input: a store's calibration never depends
        # on which texts happen to come first (streams/core/calibration.py).
        if items_path is not None:
            _calibrate_once(store, encoder, JsonlSource(items_path))
        elif events != "-":
            _calibrate_once(store, encoder, source)
    except BaseException:
        store.close()
        raise
    core = app.build_core(settings, DistinctTexts(encoder), store)
    try:
        if items_path is not None:
            _load_items(items_path, encoder, core.items, rejects)
        with EventProgress(total, enabled=not as_json) as advance:
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
            **summary.report(),
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
    # After the summary, so that these are the last lines a person sees.
    for line in rejection_alarms(summary.reject_reasons, summary.records):
        console.print(f"[bold red]warning:[/bold red] {escape(line)}", highlight=False)
    if summary.rejected:
        sys.exit(1)


def _calibrate_once(store: ProfileStore, encoder: Encoder, source: Source) -> None:
    """Calibrate the store's catalogue from `source` unless it keeps one (too few texts:
    the defaults stay, as for every store without a calibration)."""
    from interest_stream.streams.core.calibration import MIN_TEXTS, calibrate, kept_catalogue
    from interest_stream.streams.core.sources import texts_of

    if kept_catalogue(store, encoder.model_id) is not None:
        return
    texts = set(texts_of(source.records()))
    if len(texts) >= MIN_TEXTS:
        calibrate(store, encoder, texts, source=source.name)


def _load_items(path: str, encoder: Encoder, catalog: Any, rejects: Path) -> None:
    from interest_stream.streams.core.items import apply_items
    from interest_stream.streams.core.sources import JsonlSource, batched
    from interest_stream.streams.embedded import rejection_record

    if catalog is None:
        raise InterestStreamError("this store keeps no item catalogue")
    stored = rejected = 0
    for batch in batched(JsonlSource(path).records(), 512):
        outcome = apply_items(batch, encoder, catalog)
        stored += outcome.stored
        rejected += len(outcome.rejects)
        if outcome.rejects:
            with rejects.open("a", encoding="utf-8") as file:
                for rejection in outcome.rejects:
                    file.write(json.dumps(rejection_record(rejection)) + "\n")
    console.print(f"items: {stored:,} stored, {rejected:,} rejected from {path}")


def _demo_recovery(store: Any, workload: Any, encoder: Encoder) -> dict[str, Any]:
    from dataclasses import asdict

    import numpy as np

    from interest_stream.streams.demo import recovery

    by_topic: dict[str, list[str]] = {}
    for item in workload.items:
        by_topic.setdefault(item.topic, []).append(item.text)
    topic_vectors = {}
    for topic, texts in by_topic.items():
        mean = encoder.encode(texts).astype(np.float64).mean(axis=0)
        topic_vectors[topic] = mean / np.linalg.norm(mean)
    profiles = store.get([u.user_id for u in workload.users])
    return asdict(recovery(profiles, workload, topic_vectors))


def _print_run_summary(result: dict[str, Any], shown: dict[str, Any]) -> None:
    out.print(
        f"[bold]{result['records']:,}[/bold] records from {escape(result['source'])}: "
        f"[green]{result['applied']:,} applied[/green], {result['duplicates']:,} duplicates "
        f"skipped, [red]{result['rejected']:,} rejected[/red]; "
        f"{result['users_updated']:,} users, {result['writes']:,} writes "
        f"in {result['seconds']:.1f} s ({result['events_per_s'] or 0:,.0f} events/s)"
    )
    distinct = f"{result['distinct_texts'] or 0:,}" + (
        "+" if result["distinct_texts_capped"] else ""
    )
    batched_texts = f"{result['texts_encoded']:,}"
    rate = f"{result['encoder_texts_per_s'] or 0:,.0f}"
    out.print(
        f"encoder {result['model_id']}: {distinct} distinct texts; {batched_texts} encoded"
        f" batch by batch (repeats come from its cache) at {rate} texts/s",
        highlight=False,
    )
    if result["rejected"]:
        reasons = ", ".join(f"{k} x{v}" for k, v in result["reject_reasons"].items())
        out.print(
            f"rejects ({escape(reasons)}) written to {escape(result['rejects_file'])}",
            highlight=False,
        )
        for line in result["first_rejects"]:
            out.print(f"  {escape(line)}", highlight=False)
    if "recovery" in result:
        r = result["recovery"]
        out.print(
            f"demo: top interest is a planted one for {r['top_cluster_is_planted']:.0%} of "
            f"{r['users']} users, top two both planted for {r['top2_clusters_are_planted']:.0%}; "
            "short-term profile nearest a current interest for"
            f" {r['short_term_matches_current_interest']:.0%}"
        )
    if shown:
        out.print(profiles_table(list(shown.values())))


@main.command()
@click.option("--users", type=int, default=200, show_default=True, help="How many users.")
@click.option("--days", type=int, default=28, show_default=True, help="Period covered.")
@click.option("--events-per-user", type=int, default=60, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True, help="Same seed, same log.")
@click.option(
    "--duplicates",
    type=float,
    default=0.0,
    show_default=True,
    help="Fraction of events to repeat (redelivery practice).",
)
@click.option("--shuffle", is_flag=True, help="Write events in random order.")
@click.option(
    "--popularity-skew",
    type=float,
    default=0.0,
    show_default=True,
    help="Zipf exponent of item choice within a topic (0 = uniform).",
)
@click.option("--items-per-topic", type=int, help="Catalogue size per topic [default 36].")
@click.option(
    "--interest-changes",
    type=int,
    default=1,
    show_default=True,
    help="How many times each user's interests change over the period.",
)
@click.option(
    "--interests",
    metavar="LO-HI",
    help="Plant between LO and HI stable interests per user (e.g. 1-6), for cluster checks,"
    " instead of two drifting ones.",
)
@click.option(
    "--template",
    is_flag=True,
    help='Templated catalogue texts: "Title (1994). Genres: Sci-Fi, Adventure".',
)
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
    popularity_skew: float,
    items_per_topic: int | None,
    interest_changes: int,
    interests: str | None,
    template: bool,
    output: Path | None,
) -> None:
    """Generate a synthetic event log with planted, drifting interests (JSONL)."""
    from interest_stream.streams.demo import generate as generate_workload

    planted = _interest_range(interests) if interests else None
    workload = generate_workload(
        users=users,
        days=days,
        events_per_user=events_per_user,
        seed=seed,
        duplicates=duplicates,
        popularity_skew=popularity_skew,
        items_per_topic=items_per_topic,
        interest_changes=interest_changes,
        interests=planted,
        template=template,
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


def _interest_range(text: str) -> tuple[int, int]:
    low, _, high = text.partition("-")
    try:
        bounds = (int(low), int(high or low))
    except ValueError as exc:
        raise click.BadParameter(
            f"{text!r}: expected LO-HI, e.g. 1-6", param_hint="--interests"
        ) from exc
    if not 1 <= bounds[0] <= bounds[1] <= 10:
        raise click.BadParameter(f"{text!r}: need 1 <= LO <= HI <= 10", param_hint="--interests")
    return bounds
