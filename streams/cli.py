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
@click.option("--batch-size", type=int, help="Events per batch [default 1024].")
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
@click.option(
    "--items",
    "items_path",
    type=click.Path(dir_okay=False),
    help="Item catalogue JSONL (item_id, text, domain) loaded first, so clicks may"
    " carry only an item_id.",
)
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
    items_path: str | None,
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
    core = BatchCore.from_settings(settings, encoder, store)
    catalog = core.items
    try:
        if items_path is not None:
            _load_items(items_path, encoder, catalog, rejects)
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


def _load_items(path: str, encoder: Encoder, catalog: Any, rejects: Path) -> None:
    from streams.embedded import rejection_record
    from streams.items import apply_items
    from streams.sources import JsonlSource, batched

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
    _quiet_driver_logs()
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


# --- the users' side: profile similar/score/rank, publish, watch ----------------------------

_SCORE_OPTIONS = [
    click.option(
        "--long-weight", type=float, default=0.3, show_default=True, help="Weight of cos(long)."
    ),
    click.option(
        "--short-weight", type=float, default=0.5, show_default=True, help="Weight of cos(short)."
    ),
    click.option(
        "--context-weight",
        type=float,
        default=0.2,
        show_default=True,
        help="Weight of the cosine to the contextual profile (attention over clusters).",
    ),
    click.option(
        "--temperature",
        type=float,
        default=0.1,
        show_default=True,
        help="Attention temperature over the clusters (smaller: nearer the best cluster).",
    ),
]


def _score_options(command: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(_SCORE_OPTIONS):
        command = option(command)
    return command


def _quiet_driver_logs() -> None:
    """Client commands report a failure as one line; the drivers' own retry warnings and
    tracebacks (one per reconnect attempt) only bury it, unless -v asked for them."""
    if logging.getLogger().getEffectiveLevel() >= logging.WARNING:
        for name in ("kafka", "cassandra"):
            logging.getLogger(name).setLevel(logging.CRITICAL)


def _profile_client(store_url: str | None, encoder_kind: str | None = None) -> Any:
    from streams.client import ProfileClient

    _quiet_driver_logs()

    settings = load_settings(store_url=store_url)
    encoder = build_encoder(settings, encoder_kind) if encoder_kind else None
    return ProfileClient.from_url(settings.store_url, settings, encoder=encoder)


def _weights(long: float, short: float, context: float, temperature: float) -> Any:
    from streams.scoring import ScoreWeights

    return ScoreWeights(long=long, short=short, context=context, temperature=temperature)


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


@profile.command("similar")
@click.argument("user_id")
@click.option("--store", "store_url", help="Profile store URL [env INTEREST_STREAM_STORE_URL].")
@click.option("--k", type=int, default=10, show_default=True, help="How many users.")
@click.option(
    "--horizon",
    type=click.Choice(["long", "short"]),
    default="long",
    show_default=True,
    help="Compare long-term or short-term profiles.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the neighbours as JSON.")
def profile_similar(
    user_id: str, store_url: str | None, k: int, horizon: str, as_json: bool
) -> None:
    """Users whose profile is nearest USER_ID's (cosine).

    Cassandra answers from its SAI vector index (approximate nearest neighbours); SQLite
    by an exact scan over every stored profile.
    """
    with _profile_client(store_url) as client:
        similar = client.similar(user_id, k=k, horizon=horizon)
    if as_json:
        rows = [s.as_dict() for s in similar]
        out.print_json(json.dumps({"user_id": user_id, "horizon": horizon, "similar": rows}))
        return
    table = Table(title=f"users nearest {user_id} ({horizon} term)")
    table.add_column("#", justify="right")
    table.add_column("user")
    table.add_column("cosine", justify="right")
    table.add_column("top interests")
    for rank, item in enumerate(similar, start=1):
        labels = "\n".join(label[:60] for label in item.labels[:3])
        table.add_row(str(rank), item.user_id, f"{item.similarity:.3f}", labels)
    out.print(table)


@profile.command("score")
@click.argument("user_id")
@click.option("--text", "texts", multiple=True, required=True, help="A text to score (repeat).")
@click.option("--store", "store_url", help="Profile store URL [env INTEREST_STREAM_STORE_URL].")
@_score_options
@click.option("--json", "as_json", is_flag=True, help="Print the scores as JSON.")
@ENCODER_OPTION
def profile_score(
    user_id: str,
    texts: tuple[str, ...],
    store_url: str | None,
    long_weight: float,
    short_weight: float,
    context_weight: float,
    temperature: float,
    as_json: bool,
    encoder_kind: str,
) -> None:
    """Score texts against USER_ID's profile, in the order given.

    score = weighted mean of cos(text, long), cos(text, short) and cos(text, contextual
    profile), the parts the profile has; the same function as streams.client.
    """
    weights = _weights(long_weight, short_weight, context_weight, temperature)
    with _profile_client(store_url, encoder_kind) as client:
        scores = client.explain(user_id, list(texts), weights=weights)

    rows = [{"text": text, **scores.row(i)} for i, text in enumerate(texts)]
    if as_json:
        out.print_json(json.dumps({"user_id": user_id, "weights": vars(weights), "scores": rows}))
        return
    out.print(_scores_table(f"scores for {user_id}", rows))


def _scores_table(title: str, rows: list[dict[str, Any]], with_id: bool = False) -> Table:
    table = Table(title=title)
    if with_id:
        table.add_column("#", justify="right")
        table.add_column("id")
    for name in ("score", "long", "short", "context"):
        table.add_column(name, justify="right")
    table.add_column("text")
    for rank, row in enumerate(rows, start=1):
        cells = [_cell(row[name]) for name in ("score", "long", "short", "context")]
        ident = [str(rank), escape(row["id"])] if with_id else []
        table.add_row(*ident, *cells, escape((row.get("text") or "")[:70]))
    return table


@profile.command("rank")
@click.argument("user_id")
@click.option(
    "--candidates",
    "candidates_path",
    required=True,
    help='JSON lines {"id": ..., "text": ...} (or "vector": [...]); - for stdin.',
)
@click.option("--store", "store_url", help="Profile store URL [env INTEREST_STREAM_STORE_URL].")
@click.option("--top", type=int, help="Show only the best N [default: all].")
@_score_options
@click.option("--json", "as_json", is_flag=True, help="Print the ranking as JSON.")
@ENCODER_OPTION
def profile_rank(
    user_id: str,
    candidates_path: str,
    store_url: str | None,
    top: int | None,
    long_weight: float,
    short_weight: float,
    context_weight: float,
    temperature: float,
    as_json: bool,
    encoder_kind: str,
) -> None:
    """Rank candidates for USER_ID, best first (the score of `profile score`)."""
    from streams.client import read_candidates
    from streams.errors import SourceError

    if candidates_path == "-":
        candidates = read_candidates(click.get_text_stream("stdin"), "stdin")
    else:
        try:
            with open(candidates_path, encoding="utf-8") as stream:
                candidates = read_candidates(stream, candidates_path)
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
            raise SourceError(f"{candidates_path}: cannot read ({reason})") from exc
    weights = _weights(long_weight, short_weight, context_weight, temperature)
    with _profile_client(store_url, encoder_kind) as client:
        ranked = client.rank(user_id, candidates, weights=weights, top=top)
    rows = [item.as_dict() for item in ranked]
    if as_json:
        out.print_json(json.dumps({"user_id": user_id, "weights": vars(weights), "ranked": rows}))
        return
    out.print(_scores_table(f"{len(candidates)} candidates for {user_id}", rows, with_id=True))


@main.command()
@click.argument("events", required=False, default="-")
@click.option("--brokers", help="Kafka bootstrap servers [env INTEREST_STREAM_BROKERS].")
@click.option("--topic-prefix", help="Topic name prefix [env INTEREST_STREAM_TOPIC_PREFIX].")
@click.option(
    "--rate", type=float, help="Send at most this many events per second [default: no limit]."
)
@click.option(
    "--rejects",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write every rejected line here (JSONL: original bytes and reason).",
)
@click.option(
    "--items",
    "items",
    is_flag=True,
    help="The file is an item catalogue ({item_id, text, domain?} lines): send it to the"
    " items topic, keyed by item id. Publish items before clicks that name them.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def publish(
    events: str,
    brokers: str | None,
    topic_prefix: str | None,
    rate: float | None,
    rejects: Path | None,
    items: bool,
    as_json: bool,
) -> None:
    """Validate EVENTS (JSONL file, or - for stdin) and send them to Kafka.

    Every line is checked against the event contract first: a bad one is reported as
    file:line: reason and never sent. Good lines go as written to the topic of their type
    (clicks, reviews, queries), keyed by user id, batched and gzip-compressed; with --items,
    to the items topic keyed by item id. Exits 1 when some lines were rejected, 2 when
    Kafka cannot be reached or lacks the topics.
    """
    from streams.embedded import rejection_record
    from streams.publish import KafkaSender, input_topics, publish_events
    from streams.sources import JsonlSource

    settings = load_settings(brokers=brokers, topic_prefix=topic_prefix)
    _quiet_driver_logs()
    source = JsonlSource(events)
    total = None
    if events != "-":
        with open(events, "rb") as counting:
            total = sum(1 for line in counting if line.strip())
    reject_file = rejects.open("w", encoding="utf-8") if rejects is not None else None
    try:
        with KafkaSender(settings) as sender:
            items_topic = settings.topic(settings.items_topic) if items else None
            sender.check_topics(
                [items_topic] if items_topic else input_topics(settings.topic_prefix)
            )
            with _Progress(total, enabled=not as_json) as advance:
                summary = publish_events(
                    source.records(),
                    sender.send,
                    rules=settings.validation_rules(),
                    topic_prefix=settings.topic_prefix,
                    items_topic=items_topic,
                    rate=rate,
                    flush=sender.flush,
                    on_progress=advance,
                    on_reject=(
                        None
                        if reject_file is None
                        else lambda r: reject_file.write(json.dumps(rejection_record(r)) + "\n")
                    ),
                )
    finally:
        if reject_file is not None:
            reject_file.close()
    result = {"source": source.name, "brokers": settings.brokers, **summary.as_dict()}
    if rejects is not None and summary.rejected:
        result["rejects_file"] = str(rejects)
    if as_json:
        out.print_json(json.dumps(result))
    else:
        per_topic = ", ".join(f"{t} {n:,}" for t, n in result["sent_per_topic"].items())
        noun = "items" if items else "events"
        out.print(
            f"sent [bold]{result['sent']:,}[/bold] {noun} ({per_topic or 'none'}) in"
            f" {result['seconds']:.1f} s ({result['events_per_s'] or 0:,.0f} {noun}/s);"
            f" [red]{result['rejected']:,} rejected[/red] of {result['records']:,} lines",
            highlight=False,
        )
        for line in result["first_rejects"]:
            out.print(f"  {escape(line)}", highlight=False)
        if summary.rejected > len(result["first_rejects"]):
            more = summary.rejected - len(result["first_rejects"])
            out.print(f"  … and {more:,} more" + (f" (all in {rejects})" if rejects else ""))
    if summary.rejected:
        sys.exit(1)


@main.command()
@click.option("--user", "user_id", help="Only this user's updates.")
@click.option("--brokers", help="Kafka bootstrap servers [env INTEREST_STREAM_BROKERS].")
@click.option("--topic-prefix", help="Topic name prefix [env INTEREST_STREAM_TOPIC_PREFIX].")
@click.option(
    "--from-beginning", is_flag=True, help="Start at the oldest retained update, not the next."
)
@click.option("--max", "max_updates", type=int, help="Stop after N updates (exit 1 if fewer).")
@click.option(
    "--timeout",
    "timeout_s",
    type=float,
    help="Stop after this many seconds without an update [default: follow until Ctrl-C].",
)
@click.option(
    "--group",
    help="Commit offsets under this consumer group, to resume later [default: commit nothing].",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per update and line.")
@click.option("--vectors/--no-vectors", default=False, help="Include vectors in --json output.")
def watch(
    user_id: str | None,
    brokers: str | None,
    topic_prefix: str | None,
    from_beginning: bool,
    max_updates: int | None,
    timeout_s: float | None,
    group: str | None,
    as_json: bool,
    vectors: bool,
) -> None:
    """Follow profile-updates: user, version, top interests and drift of each change.

    Erasures (tombstones) show as such. Without --group this is a plain reader: no
    consumer group is joined and no offsets are committed.
    """
    from kafka.errors import KafkaError

    from streams.kafka_clients import unreachable
    from streams.watch import follow_updates, format_update, open_updates_consumer, update_json

    settings = load_settings(brokers=brokers, topic_prefix=topic_prefix)
    _quiet_driver_logs()
    consumer = open_updates_consumer(
        settings,
        from_beginning=from_beginning,
        idle_timeout_s=timeout_s,
        group=group,
        user_id=user_id,
    )
    shown = 0
    interrupted = False
    try:
        for item in follow_updates(consumer, user_id=user_id, max_updates=max_updates):
            shown += 1
            if as_json:
                click.echo(json.dumps(update_json(item, include_vectors=vectors)))
            else:
                style = "red" if item.erased or item.problem else None
                out.print(escape(format_update(item)), style=style, highlight=False)
    except KafkaError as exc:
        raise unreachable(settings, exc) from exc
    except KeyboardInterrupt:
        interrupted = True
    finally:
        consumer.close()
    if max_updates is not None and shown < max_updates and not interrupted:
        console.print(
            f"only {shown} of {max_updates} updates arrived (stopped after {timeout_s:g} s"
            " without one)",
            highlight=False,
        )
        sys.exit(1)
    if shown == 0 and timeout_s is not None and not as_json:
        console.print(f"no updates in {timeout_s:g} s", highlight=False)


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
    output: Path | None,
) -> None:
    """Generate a synthetic event log with planted, drifting interests (JSONL)."""
    import random

    from streams.workload import generate as generate_workload

    workload = generate_workload(
        users=users,
        days=days,
        events_per_user=events_per_user,
        seed=seed,
        duplicates=duplicates,
        popularity_skew=popularity_skew,
        items_per_topic=items_per_topic,
        interest_changes=interest_changes,
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
@click.option("--batch-size", type=int, help="Max events per batch [default 1024].")
@click.option("--batch-wait-ms", type=int, help="Max wait to fill a batch [default 200].")
@click.option("--precision", type=click.Choice(["auto", "fp32", "int8", "fp16"]))
@click.option("--short-half-life", help="e.g. 6h [default 6h].")
@click.option("--long-half-life", help="e.g. 30d [default 30d].")
@click.option(
    "--profile-cache",
    "profile_cache_size",
    type=int,
    help="Profiles kept in memory between batches, 0 to read every batch [default 2000].",
)
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
    profile_cache_size: int | None,
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
        profile_cache_size=profile_cache_size,
    )
    encoder = build_encoder(settings, encoder_kind)
    store = open_store(settings.store_url, **_store_options(settings))
    run_worker(settings, encoder, store, loglevel)


@main.command()
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
@click.option("--precision", type=click.Choice(["auto", "fp32", "int8", "fp16"]))
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
@ENCODER_OPTION
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
    encoder_kind: str,
) -> None:
    """Does it recommend better? Rank every item for each user at a time cut and measure.

    Splits EVENTS (JSONL in the event contract) per user by time, rebuilds profiles from
    what came before each cut with the product's own functions, and reports Recall@K,
    NDCG@K and MRR with bootstrap CIs for each strategy. Without EVENTS, evaluates a
    generated workload with planted, drifting interests and skewed item popularity.
    """
    from encoders.layout import default_model_dir
    from streams import evaluate as ev
    from streams.workload import generate as generate_workload

    settings = load_settings(
        precision=precision,
        short_half_life_s=_half_life(short_half_life),
        long_half_life_s=_half_life(long_half_life),
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
    encoder = build_encoder(settings, encoder_kind)

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
        from streams.errors import MissingExtraError
        from streams.evaluate_plots import write_plots

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
@click.option("--batch-size", type=int, help="Worker batch size [default 1024].")
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


def _datacenters(values: tuple[str, ...]) -> dict[str, int]:
    found: dict[str, int] = {}
    for value in values:
        name, _, factor = value.partition("=")
        if not name or not factor.isdigit() or int(factor) < 1:
            raise click.BadParameter(
                f"{value!r}: expected DC=FACTOR, e.g. dc1=3", param_hint="--keyspace-dc"
            )
        found[name] = int(factor)
    return found


@main.command()
@click.option(
    "--kafka/--no-kafka",
    "with_kafka",
    default=True,
    show_default=True,
    help="Create the Kafka topics.",
)
@click.option(
    "--cassandra/--no-cassandra",
    "with_cassandra",
    default=None,
    help="Create the Cassandra schema [default: when the store URL is cassandra://].",
)
@click.option("--brokers", help="Kafka bootstrap servers [env INTEREST_STREAM_BROKERS].")
@click.option("--store", "store_url", help="Profile store URL [env INTEREST_STREAM_STORE_URL].")
@click.option("--partitions", type=int, help="Partitions per topic [default 6].")
@click.option("--topic-prefix", help="Topic name prefix [env INTEREST_STREAM_TOPIC_PREFIX].")
@click.option(
    "--keyspace-rf",
    type=int,
    default=1,
    show_default=True,
    help="SimpleStrategy replication factor of a new keyspace (single DC, local).",
)
@click.option(
    "--keyspace-dc",
    multiple=True,
    metavar="DC=RF",
    help="NetworkTopologyStrategy factor per data centre (repeat); production.",
)
@click.option(
    "--timeout",
    "timeout_s",
    type=float,
    default=15.0,
    show_default=True,
    help="Seconds to wait for the Kafka brokers.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def init(
    with_kafka: bool,
    with_cassandra: bool | None,
    brokers: str | None,
    store_url: str | None,
    partitions: int | None,
    topic_prefix: str | None,
    keyspace_rf: int,
    keyspace_dc: tuple[str, ...],
    timeout_s: float,
    as_json: bool,
) -> None:
    """Create the Kafka topics and the Cassandra schema; safe to run again.

    Existing topics, keyspace, tables and indexes are left as they are and reported; a
    layout the worker cannot use (input topics with unequal partition counts, an update
    topic that is not compacted) is reported and makes the command exit with status 1.
    """
    from streams.admin import init_cassandra, init_kafka, replication_options

    settings = load_settings(
        brokers=brokers, store_url=store_url, partitions=partitions, topic_prefix=topic_prefix
    )
    if with_cassandra is None:
        with_cassandra = settings.store_url.startswith("cassandra://")
    report: dict[str, Any] = {}
    problems: list[str] = []
    if with_kafka:
        kafka_report = init_kafka(settings, partitions=partitions, timeout_s=timeout_s)
        report["kafka"] = kafka_report.as_dict()
        problems += kafka_report.problems
    if with_cassandra:
        replication = replication_options(keyspace_rf, _datacenters(keyspace_dc))
        report["cassandra"] = init_cassandra(settings, replication=replication).as_dict()
    if as_json:
        out.print_json(json.dumps(report))
    else:
        for topic in report.get("kafka", {}).get("topics", []):
            out.print(
                f"topic {topic['name']}: {topic['status']} ({topic['partitions']}"
                f" partitions, replication {topic['replication']},"
                f" cleanup.policy={topic['cleanup_policy']})",
                highlight=False,
            )
        if "cassandra" in report:
            schema = report["cassandra"]
            for name in schema["created"]:
                out.print(f"cassandra {name}: created", highlight=False)
            for name in schema["existing"]:
                out.print(f"cassandra {name}: exists", highlight=False)
            replication_text = ", ".join(f"{k}={v}" for k, v in schema["replication"].items())
            out.print(
                f"keyspace {schema['keyspace']}: replication {replication_text},"
                f" vectors of {schema['dim']} dimensions",
                highlight=False,
            )
        if not report:
            out.print("nothing to do: --no-kafka and no Cassandra store")
    for problem in problems:
        console.print(f"[yellow]problem:[/yellow] {problem}", highlight=False, soft_wrap=True)
    if problems:
        sys.exit(1)


if __name__ == "__main__":
    main()
