"""`forget`: erase users (the right to be forgotten), for good."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
from rich.markup import escape

from interest_stream.store.base import ERASURE_REASONS
from interest_stream.streams import app
from interest_stream.streams.cli import options
from interest_stream.streams.cli.group import main
from interest_stream.streams.cli.output import out, quiet_driver_logs
from interest_stream.streams.errors import BrokerError, SourceError


def _read_user_ids(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
        raise SourceError(f"{path}: cannot read ({reason})") from exc
    ids = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    for number, user_id in enumerate(ids, start=1):
        if len(user_id) > 128:
            raise SourceError(f"{path}:{number}: field 'user_id': longer than 128 characters")
    return ids


@main.command()
@click.argument("user_ids", nargs=-1)
@click.option(
    "--from",
    "from_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A file of user ids, one per line (# starts a comment).",
)
@click.option(
    "--reason",
    type=click.Choice(ERASURE_REASONS),
    default="user-request",
    show_default=True,
    help="Why, recorded with the erasure as a code (never free text).",
)
@click.option(
    "--kafka/--no-kafka",
    "with_kafka",
    default=None,
    help="Publish a tombstone on profile-updates (and find the user's partition to fence"
    " out only its worker; without Kafka every worker re-reads). [default: on, except for"
    " a sqlite:// store when no brokers are named by --brokers or INTEREST_STREAM_BROKERS]",
)
@click.option(
    "--wait",
    "wait_s",
    type=float,
    default=60.0,
    show_default=True,
    help="Seconds to wait for the workers to commit everything from before the erasure"
    " before publishing the tombstone (so no earlier update can land after it).",
)
@click.option("--group", "consumer_group", help="The workers' consumer group.")
@options.store
@options.brokers
@options.topic_prefix
@options.as_json("Print one JSON object per user.")
def forget(
    user_ids: tuple[str, ...],
    from_file: Path | None,
    reason: str,
    with_kafka: bool | None,
    wait_s: float,
    consumer_group: str | None,
    store_url: str | None,
    brokers: str | None,
    topic_prefix: str | None,
    as_json: bool,
) -> None:
    """Erase USER_IDS: profile, per-domain rows, ANN copies and cached copies in running
    workers; record the erasure (a keyed hash of the user id, the time, a reason code);
    publish a tombstone.

    Events of an erased user from before the erasure are dropped if they are replayed or
    arrive late; events after it start a new profile. Safe to run again.
    """
    from interest_stream.streams.admin import forget_users

    wanted = list(dict.fromkeys([*user_ids, *(_read_user_ids(from_file) if from_file else [])]))
    if not wanted:
        raise click.UsageError("name at least one user, or --from FILE")
    settings = app.load_settings(
        store_url=store_url,
        brokers=brokers,
        topic_prefix=topic_prefix,
        consumer_group=consumer_group,
    )
    if with_kafka is None:
        # An embedded store (`run`) has no Kafka to tell; a named broker list says there is.
        embedded = settings.store_url.startswith("sqlite:")
        with_kafka = not embedded or "brokers" in settings.model_fields_set
    quiet_driver_logs()
    store = app.open_store(settings)
    try:
        done = forget_users(
            settings,
            store,
            wanted,
            reason=reason,
            at=time.time(),
            with_kafka=with_kafka,
            wait_s=wait_s,
            pauses=app.pause_points(settings),
        )
    except BrokerError as exc:
        hint = f"{exc} (for a store without Kafka, add --no-kafka)"
        raise BrokerError(hint, retriable=exc.retriable) from exc
    finally:
        store.close()
    for erasure in done:
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "user_id": erasure.user_id,
                        "had_profile": erasure.had_profile,
                        "tombstone": erasure.tombstone,
                        "records_behind": erasure.behind,
                    }
                )
            )
        else:
            what = "profile erased" if erasure.had_profile else "no profile stored"
            note = "; tombstone published" if erasure.tombstone else ""
            out.print(f"{escape(erasure.user_id)}: {what}, erasure recorded{note}", highlight=False)
    if done and done[0].behind:
        out.print(
            f"warning: the workers had not committed {done[0].behind} records from before the"
            f" erasure after {wait_s:g} s; an update of them may still follow the tombstone"
            " (run forget again once they have caught up)",
            highlight=False,
        )
