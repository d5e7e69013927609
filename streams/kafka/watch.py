"""Following the `profile-updates` topic: `interest-stream watch`.

`follow_updates` turns Kafka messages (anything with key, value, partition, offset and
timestamp) into `WatchedUpdate`s: a decoded `ProfileUpdate`, an erasure (a tombstone, null
value) or a record that does not decode (shown, never fatal: a watcher must not die on one
bad record). It filters by user and stops after N updates; the consumer itself, an
assignment with no group by default so watching never moves anybody's committed offsets,
comes from `open_updates_consumer`. `format_update` and `update_json` are the two ways of
printing one update.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from interest_stream.schemas.events import printable
from interest_stream.schemas.updates import ProfileUpdate
from interest_stream.streams.core.routing import partition_of
from interest_stream.streams.errors import BrokerError, TopicLayoutError
from interest_stream.streams.kafka.clients import (
    make_consumer,
    require_topics,
    unreachable,
)
from interest_stream.streams.settings import Settings

TOP_LABELS = 3
LABEL_CHARS = 50


@dataclass(frozen=True)
class WatchedUpdate:
    """One message of profile-updates: an update, an erasure, or an undecodable record."""

    user_id: str
    partition: int
    offset: int
    timestamp_ms: int | None
    update: ProfileUpdate | None = None
    problem: str | None = None

    @property
    def erased(self) -> bool:
        return self.update is None and self.problem is None


def decode_message(message: Any) -> WatchedUpdate:
    """A Kafka message of profile-updates as a `WatchedUpdate`."""
    key = message.key.decode("utf-8", "replace") if message.key is not None else ""
    where = {
        "partition": message.partition,
        "offset": message.offset,
        "timestamp_ms": getattr(message, "timestamp", None),
    }
    if message.value is None:
        return WatchedUpdate(user_id=key, **where)
    try:
        update = ProfileUpdate.model_validate_json(message.value)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = ".".join(str(part) for part in first["loc"]) or "record"
        return WatchedUpdate(
            user_id=key, problem=f"undecodable update ({field}: {first['msg']})", **where
        )
    return WatchedUpdate(user_id=update.user_id or key, update=update, **where)


def follow_updates(
    messages: Iterable[Any], *, user_id: str | None = None, max_updates: int | None = None
) -> Iterator[WatchedUpdate]:
    """Decoded updates of `messages`, only `user_id`'s if given, at most `max_updates`."""
    if max_updates is not None and max_updates <= 0:
        return
    shown = 0
    wanted = user_id.encode() if user_id is not None else None
    for message in messages:
        # The topic is keyed by user id: filter on the key before paying for decoding.
        if wanted is not None and message.key != wanted:
            continue
        yield decode_message(message)
        shown += 1
        if max_updates is not None and shown >= max_updates:
            return


def _clock(epoch_ms: int | None) -> str:
    if epoch_ms is None:
        return "--:--:--"
    return datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).strftime("%H:%M:%S")


def _short(label: str) -> str:
    label = printable(" ".join(label.split()))
    return label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1] + "…"


def format_update(item: WatchedUpdate) -> str:
    """One readable line: time, user, version, events, drift and the top interests."""
    when = _clock(item.timestamp_ms)
    user = printable(item.user_id)
    if item.problem is not None:
        where = f"partition {item.partition}, offset {item.offset}"
        return f"{when}  {user}  ?  {printable(item.problem)} ({where})"
    if item.update is None:
        return f"{when}  {user}  erased (tombstone)"
    update = item.update
    drift = "-" if update.drift is None else f"{update.drift:.2f}"
    labels = " | ".join(f"{_short(c.label)} ({c.weight:.1f})" for c in update.clusters[:TOP_LABELS])
    return (
        f"{when}  {printable(update.user_id)}  v{update.version}  {update.event_count} events"
        f"  drift {drift}  {labels or '(no interests yet)'}"
    )


def update_json(item: WatchedUpdate, *, include_vectors: bool = False) -> dict[str, Any]:
    """One JSON-lines record: the update as published (vectors optional), an erasure, or
    the problem; `partition` and `offset` say where it came from."""
    where = {"partition": item.partition, "offset": item.offset}
    if item.problem is not None:
        return {"user_id": item.user_id, "error": item.problem, **where}
    if item.update is None:
        return {"user_id": item.user_id, "erased": True, **where}
    exclude = None if include_vectors else {"short", "long"}
    return {**item.update.model_dump(mode="json", exclude=exclude), **where}


def open_updates_consumer(
    settings: Settings,
    *,
    from_beginning: bool = False,
    idle_timeout_s: float | None = None,
    group: str | None = None,
    user_id: str | None = None,
) -> Any:
    """A KafkaConsumer on the (prefixed) profile-updates topic.

    Without `group` nothing is committed anywhere; with one, offsets are committed so the
    next watch with that group resumes where this one stopped. `idle_timeout_s` ends the
    iteration after that long without a message. With `user_id` and no group, only the
    partition holding that user's key is read (the producers' default partitioner:
    murmur2 of the key), not the whole topic.
    """
    topic = settings.topic(settings.updates_topic)
    consumer = make_consumer(
        settings,
        group_id=group,
        enable_auto_commit=group is not None,
        auto_offset_reset="earliest" if from_beginning else "latest",
        consumer_timeout_ms=int(idle_timeout_s * 1000) if idle_timeout_s else float("inf"),
    )
    from kafka.errors import KafkaError

    try:
        require_topics(settings, consumer, [topic])
        consumer.subscribe([topic])
    except BrokerError:
        consumer.close()
        raise
    except KafkaError as exc:
        consumer.close()
        raise unreachable(settings, exc) from exc
    return consumer


def _partition_of(consumer: Any, topic: str, user_id: str) -> Any:
    """The partition the default partitioner (Java's, aiokafka's, kafka-python's: murmur2
    of the key) gives `user_id`'s updates."""
    from kafka import TopicPartition

    partitions = sorted(consumer.partitions_for_topic(topic) or ())
    if not partitions:
        raise TopicLayoutError(f"topic {topic!r} has no partitions")
    return TopicPartition(topic, partitions[partition_of(user_id.encode(), len(partitions))])
