"""The Kafka side of forgetting a user: which input partition owns the user (murmur2 of the
user id over the input topics' partition count, streams/core/routing.py), and the tombstone
on the compacted `profile-updates` topic that tells consumers to drop the user and lets
compaction remove the earlier announcements.

The tombstone must come after every update the workers publish for what they stored before
the erasure, or compaction keeps such an update (vectors, labels) as the user's latest
record. Offsets, not clocks, tell when that is: the erasure fences the workers out first
(nothing they store after it holds the erased events), then the input topics' end offsets
are read, and the tombstone is published once the workers' group has committed up to them.
A worker commits a batch only after its updates are confirmed by the brokers, so by then
every update of a write made before the erasure is on the topic, ahead of the tombstone.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from interest_stream.schemas.events import INPUT_TOPICS
from interest_stream.streams.errors import TopicLayoutError
from interest_stream.streams.kafka.clients import (
    make_consumer,
    make_producer,
    partition_counts,
    unreachable,
)
from interest_stream.streams.settings import Settings


def input_partitions(settings: Settings) -> int:
    """The partition count of the input topics (equal for all three: init checks it)."""
    topic = settings.topic(INPUT_TOPICS[0])
    count = partition_counts(settings, [topic])[topic]
    if not count:
        raise TopicLayoutError(f"topic {topic} has no partitions")
    return count


def publish_tombstones(settings: Settings, user_ids: Sequence[str]) -> int:
    """A null value per user on profile-updates, keyed like the user's announcements, and
    confirmed by the brokers."""
    from kafka.errors import KafkaError

    topic = settings.topic(settings.updates_topic)
    producer = make_producer(settings, acks="all")
    try:
        futures = [producer.send(topic, key=user_id.encode(), value=None) for user_id in user_ids]
        producer.flush(timeout=60)
        for future in futures:
            future.get(timeout=60)
    except KafkaError as exc:
        raise unreachable(settings, exc) from exc
    finally:
        producer.close()
    return len(futures)


def input_end_offsets(settings: Settings) -> dict[tuple[str, int], int]:
    """The end offset of every partition of the input and repartition topics, now."""
    from kafka import TopicPartition
    from kafka.errors import KafkaError

    topics = [settings.topic(name) for name in (*INPUT_TOPICS, settings.repartition_topic)]
    consumer = make_consumer(settings, group_id=None, enable_auto_commit=False)
    try:
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        ends = consumer.end_offsets(partitions)
    except KafkaError as exc:
        raise unreachable(settings, exc) from exc
    finally:
        consumer.close()
    return {(tp.topic, tp.partition): int(end) for tp, end in ends.items()}


def behind(settings: Settings, ends: dict[tuple[str, int], int]) -> int:
    """How many of the records before `ends` the workers' group has not committed yet."""
    from kafka import TopicPartition
    from kafka.errors import KafkaError

    consumer = make_consumer(settings, group_id=settings.consumer_group, enable_auto_commit=False)
    try:
        missing = 0
        for (topic, partition), end in ends.items():
            if end == 0:
                continue
            committed = consumer.committed(TopicPartition(topic, partition)) or 0
            missing += max(0, end - committed)
        return missing
    except KafkaError as exc:
        raise unreachable(settings, exc) from exc
    finally:
        consumer.close()


def wait_for_workers(settings: Settings, ends: dict[tuple[str, int], int], timeout_s: float) -> int:
    """Wait until the workers' group has committed up to `ends`; the records still
    uncommitted when `timeout_s` ran out (0: caught up)."""
    deadline = time.monotonic() + timeout_s
    while True:
        left = behind(settings, ends)
        if left == 0 or time.monotonic() >= deadline:
            return left
        time.sleep(0.2)
