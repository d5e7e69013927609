"""The Kafka side of forgetting a user: which input partition the user's events arrive on
(the producers' default partitioner, murmur2 of the key, over the input topics' partition
count), and the tombstone on the compacted `profile-updates` topic that tells consumers
to drop the user and lets compaction remove the earlier announcements."""

from __future__ import annotations

from collections.abc import Sequence

from interest_stream.schemas.events import INPUT_TOPICS
from interest_stream.streams.errors import BrokerError
from interest_stream.streams.kafka.clients import (
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
        raise BrokerError(f"topic {topic} has no partitions")
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
