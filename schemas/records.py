"""Messages as a source delivered them, before and after validation: `Provenance` says where
one came from (the same five facts for a raw record, a valid candidate and a rejection),
`RawRecord` is the undecoded message and `Rejection` one that could not become an event."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where a message was delivered from. `source` and `offset` identify it for dedup
    ("clicks:3" and the Kafka offset, or a file and its line); topic, partition and key are
    what a DLQ record reports (None outside Kafka); a forwarded event names the topic it
    first arrived on, and the repartition topic's partition and offset."""

    source: str
    offset: int
    topic: str | None = None
    partition: int | None = None
    key: bytes | None = None
    routed: bool = False  # forwarded to its user's partition (streams/core/routing.py)
    first_source: str | None = None  # where a forwarded record first arrived, and its
    first_offset: int | None = None  # offset there (an erasure's bound is about those)


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One message as a source delivered it."""

    value: bytes
    origin: Provenance

    @classmethod
    def at(
        cls,
        value: bytes,
        source: str,
        offset: int,
        *,
        topic: str | None = None,
        partition: int | None = None,
        key: bytes | None = None,
    ) -> RawRecord:
        return cls(value, Provenance(source, offset, topic, partition, key))


@dataclass(frozen=True, slots=True)
class Rejection:
    """An input that could not become an event: kept whole, with the reason, never dropped."""

    raw: bytes
    reason: str
    origin: Provenance

    def located(self) -> str:
        """'where:offset: reason', e.g. 'events.jsonl:12: field 'ts': ...'."""
        where = self.origin.source.removeprefix("file:")
        return f"{where}:{self.origin.offset}: {self.reason}"
