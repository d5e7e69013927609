"""Which partition owns a user, and the events that arrived on another one.

The topology does not depend on how producers partition. Every user has one owning
partition, the one Kafka's default partitioner (murmur2, as in Java, aiokafka and
kafka-python) gives the user id over the input topics' partition count; its fence, its
dedup offsets and `forget` all name that partition. An event that a producer put elsewhere
(librdkafka clients hash with CRC32 by default, a custom partitioner, an explicit
partition) is forwarded unchanged to its user's partition of the repartition topic, as
Kafka Streams and Faust's `group_by` do, and folded by the owner of that partition when it
arrives there: so a user's events are folded by one writer only, whoever produced them.
A record without a key is rejected by validation (schemas/events.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from interest_stream.schemas.records import Provenance
from interest_stream.streams.errors import MissingExtraError


def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (Java, aiokafka, kafka-python) gives a key."""
    try:
        from kafka.partitioner.default import murmur2
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise MissingExtraError("kafka-python", "kafka") from exc
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


@lru_cache(maxsize=1 << 14)
def _owner(user_id: str, partitions: int) -> int:
    """`partition_of` a user id, cached: murmur2 in pure Python costs ~14 µs, asked for
    every event a worker validates, and the same users come back batch after batch."""
    return partition_of(user_id.encode(), partitions)


@dataclass(frozen=True, slots=True)
class Forward:
    """An event to send, as it came (value and origin), to its user's partition."""

    user_id: str
    value: bytes
    origin: Provenance
    partition: int


@dataclass(frozen=True, slots=True)
class Routing:
    """The input topics' partition count of a deployment; None partitions: not Kafka."""

    partitions: int

    def owner(self, user_id: str) -> int:
        return _owner(user_id, self.partitions)

    def misplaced(self, user_id: str, origin: Provenance) -> int | None:
        """The partition to forward an event of `user_id` to, or None if it is where it
        belongs (or came through the repartition topic already, or not from Kafka)."""
        if origin.partition is None or origin.routed:
            return None
        owner = self.owner(user_id)
        return None if owner == origin.partition else owner


def forward_headers(forward: Forward) -> list[tuple[str, bytes]]:
    """Where a forwarded event first arrived (the DLQ's header names, read back by
    `routed_origin`)."""
    origin = forward.origin
    return [
        ("source.name", origin.source.encode()),
        ("source.topic", (origin.topic or "").encode()),
        ("source.partition", str(origin.partition).encode()),
        ("source.offset", str(origin.offset).encode()),
    ]


@dataclass(frozen=True, slots=True)
class FirstArrival:
    """Where a forwarded event first arrived, read back from its headers."""

    source: str | None  # "topic:partition", prefixed, as dedup and erasures name sources
    offset: int | None


def first_arrival(headers: Sequence[tuple[str, bytes]] | None) -> FirstArrival:
    """What `forward_headers` wrote (None for what is missing or unreadable)."""
    found = {name: value.decode("utf-8", "replace") for name, value in headers or ()}
    offset = found.get("source.offset", "")
    return FirstArrival(found.get("source.name") or None, int(offset) if offset.isdigit() else None)
