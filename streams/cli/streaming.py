"""The Kafka side of the command line: `worker` (the streaming pipeline), `init` (topics and
schema), `publish` (validated events into their topics) and `watch` (follow updates)."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from interest_stream.streams import app
from interest_stream.streams.cli import options
from interest_stream.streams.cli.group import main
from interest_stream.streams.cli.output import (
    EventProgress,
    console,
    drivers_quiet_while_connecting,
    out,
    quiet_driver_logs,
)


@main.command()
@options.brokers
@options.store
@click.option(
    "--group",
    "consumer_group",
    help=options.setting_help("Consumer group.", "consumer_group"),
)
@options.topic_prefix
@options.batch_size
@options.batch_wait_ms
@options.precision
@options.half_lives
@click.option(
    "--profile-cache",
    "profile_cache_size",
    type=int,
    help=options.setting_help(
        "Profiles kept in memory between batches, 0 to read every batch.", "profile_cache_size"
    ),
)
@click.option(
    "--loglevel",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
@options.encoder
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
    encoder_kind: app.EncoderKind,
) -> None:
    """Consume clicks, reviews and queries from Kafka; write profiles; publish updates.

    Offsets are committed only after the store and profile-updates hold the result; run
    `interest-stream init` once first so that the topics and the schema exist.
    """
    from interest_stream.streams.kafka.clients import check_worker_topics
    from interest_stream.streams.worker import check_partition_count, run_worker

    settings = app.load_settings(
        brokers=brokers,
        store_url=store_url,
        consumer_group=consumer_group,
        topic_prefix=topic_prefix,
        batch_size=batch_size,
        batch_wait_ms=batch_wait_ms,
        precision=precision,
        short_half_life_s=app.half_life(short_half_life),
        long_half_life_s=app.half_life(long_half_life),
        profile_cache_size=profile_cache_size,
    )
    # Refused credentials, unreachable servers and missing topics are one line here, not
    # a Faust or driver traceback after start-up.
    with drivers_quiet_while_connecting():
        partitions = check_worker_topics(settings)
        store = app.open_store(settings)
    try:
        check_partition_count(store, settings, partitions)
    except BaseException:
        store.close()
        raise
    encoder = app.build_encoder(settings, encoder_kind, reserve_cache=True)
    core = app.build_core(settings, encoder, store, partitions=partitions)
    run_worker(settings, core, loglevel)


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
@options.brokers
@options.store
@click.option(
    "--partitions", type=int, help=options.setting_help("Partitions per topic.", "partitions")
)
@options.topic_prefix
@click.option(
    "--replication-factor",
    type=int,
    help=options.setting_help(
        "Replicas of each new topic (at most the number of brokers).", "replication_factor"
    ),
)
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
@options.as_json("Print the report as JSON.")
def init(
    with_kafka: bool,
    with_cassandra: bool | None,
    brokers: str | None,
    store_url: str | None,
    partitions: int | None,
    topic_prefix: str | None,
    replication_factor: int | None,
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
    from interest_stream.streams.admin import (
        grant_cassandra_roles,
        init_cassandra,
        init_kafka,
        replication_options,
    )

    settings = app.load_settings(
        brokers=brokers,
        store_url=store_url,
        partitions=partitions,
        topic_prefix=topic_prefix,
        replication_factor=replication_factor,
    )
    quiet_driver_logs()  # a refused or unreachable server is one error line, not a log storm
    if with_cassandra is None:
        with_cassandra = settings.store_url.startswith("cassandra://")
    report: dict[str, Any] = {}
    problems: list[str] = []
    if with_kafka:
        kafka_report = init_kafka(settings, partitions=partitions, timeout_s=timeout_s)
        report["kafka"] = asdict(kafka_report)
        problems += kafka_report.problems
    if with_cassandra:
        replication = replication_options(keyspace_rf, _datacenters(keyspace_dc))
        schema = init_cassandra(settings, replication=replication)
        grants = grant_cassandra_roles(settings)
        report["cassandra"] = {"store": settings.store_url, **asdict(schema), "grants": grants}
    if as_json:
        out.print_json(json.dumps(report))
    else:
        _print_init(report)
    for problem in problems:
        console.print(f"[yellow]problem:[/yellow] {problem}", highlight=False, soft_wrap=True)
    if problems:
        sys.exit(1)


def _print_init(report: dict[str, Any]) -> None:
    for topic in report.get("kafka", {}).get("topics", []):
        out.print(
            f"topic {topic['name']}: {topic['status']} ({topic['partitions']}"
            f" partitions, replication {topic['replication']},"
            f" cleanup.policy={topic['cleanup_policy']})",
            highlight=False,
        )
    for line in report.get("kafka", {}).get("configured", []):
        out.print(f"topic {line}: set", highlight=False)
    for line in report.get("kafka", {}).get("grants", []):
        out.print(f"granted {line}", highlight=False)
    if "cassandra" in report:
        schema = report["cassandra"]
        for name in schema["created"]:
            out.print(f"cassandra {name}: created", highlight=False)
        for name in schema["existing"]:
            out.print(f"cassandra {name}: exists", highlight=False)
        for name in schema["unlisted"]:
            out.print(
                f"cassandra {name}: exists, kept though ANN_HORIZONS leaves it out"
                f" (DROP INDEX {name} ends its inserts)",
                highlight=False,
            )
        replication_text = ", ".join(f"{k}={v}" for k, v in schema["replication"].items())
        out.print(
            f"keyspace {schema['keyspace']}: replication {replication_text},"
            f" vectors of {schema['dim']} dimensions",
            highlight=False,
        )
        for line in schema["grants"]:
            out.print(f"granted {line}", highlight=False)
    if not report:
        out.print("nothing to do: --no-kafka and no Cassandra store")


@main.command()
@click.argument("events", required=False, default="-")
@options.brokers
@options.topic_prefix
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
@options.as_json("Print the summary as JSON.")
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
    from interest_stream.streams.core.sources import JsonlSource
    from interest_stream.streams.embedded import rejection_record
    from interest_stream.streams.kafka.publish import KafkaSender, input_topics, publish_events

    settings = app.load_settings(brokers=brokers, topic_prefix=topic_prefix)
    quiet_driver_logs()
    source = JsonlSource(events)
    total = source.count_lines() if events != "-" else None
    reject_file = rejects.open("w", encoding="utf-8") if rejects is not None else None
    try:
        with KafkaSender(settings) as sender:
            items_topic = settings.topic(settings.items_topic) if items else None
            sender.check_topics(
                [items_topic] if items_topic else input_topics(settings.topic_prefix)
            )
            with EventProgress(total, enabled=not as_json) as advance:
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
    result = {"source": source.name, "brokers": settings.brokers, **summary.report()}
    if rejects is not None and summary.rejected:
        result["rejects_file"] = str(rejects)
    if as_json:
        out.print_json(json.dumps(result))
    else:
        _print_publish(result, summary.rejected, rejects, "items" if items else "events")
    if summary.rejected:
        sys.exit(1)


def _print_publish(result: dict[str, Any], rejected: int, rejects: Path | None, noun: str) -> None:
    per_topic = ", ".join(f"{t} {n:,}" for t, n in result["sent_per_topic"].items())
    out.print(
        f"sent [bold]{result['sent']:,}[/bold] {noun} ({per_topic or 'none'}) in"
        f" {result['seconds']:.1f} s ({result['events_per_s'] or 0:,.0f} {noun}/s);"
        f" [red]{result['rejected']:,} rejected[/red] of {result['records']:,} lines",
        highlight=False,
    )
    for line in result["first_rejects"]:
        out.print(f"  {escape(line)}", highlight=False)
    if rejected > len(result["first_rejects"]):
        more = rejected - len(result["first_rejects"])
        out.print(f"  … and {more:,} more" + (f" (all in {rejects})" if rejects else ""))


@main.command()
@click.option("--user", "user_id", help="Only this user's updates.")
@options.brokers
@options.topic_prefix
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
@options.as_json("One JSON object per update and line.")
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

    from interest_stream.streams.kafka.clients import unreachable
    from interest_stream.streams.kafka.watch import (
        follow_updates,
        format_update,
        open_updates_consumer,
        update_json,
    )

    settings = app.load_settings(brokers=brokers, topic_prefix=topic_prefix)
    quiet_driver_logs()
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
