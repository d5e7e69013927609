"""Messages as a source delivered them, before and after validation: `Provenance` says where
one came from (the same five facts for a raw record, a valid candidate and a rejection),
`RawRecord` is the undecoded message and `Rejection` one that could not become an event."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


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


class RejectKind(StrEnum):
    """Why a record was rejected, as a small fixed set (a metric label, a DLQ header); the
    free-text `Rejection.reason` says the details."""

    TOO_LARGE = "too_large"
    """Over the size limit of a message (schemas/events.py MAX_MESSAGE_BYTES)."""
    NOT_UTF8 = "not_utf8"
    NOT_JSON = "not_json"
    NOT_AN_OBJECT = "not_an_object"
    FIELD = "field"
    """A field is missing or invalid; `Rejection.field` names it."""
    MESSAGE_KEY = "message_key"
    """The Kafka key is missing or is not the record's user (or item) id."""
    UNKNOWN_ITEM = "unknown_item"
    """A click names only an item the catalogue does not have."""


# The fields a rejection may name in a label; any other (an unknown field) counts as "other".
LABELLED_FIELDS = frozenset(
    {"event_id", "user_id", "ts", "type", "text", "item_id", "rating", "domain"}
)


@dataclass(frozen=True, slots=True)
class Rejection:
    """An input that could not become an event: kept whole, with the reason, never dropped."""

    raw: bytes
    reason: str
    origin: Provenance
    kind: RejectKind
    field: str | None = None
    """The field at fault, for `RejectKind.FIELD`."""

    def label(self) -> str:
        """The kind as a bounded label value: `field:ts` for a field, else the kind."""
        if self.kind is RejectKind.FIELD:
            return f"field:{self.field if self.field in LABELLED_FIELDS else 'other'}"
        return self.kind.value

    def located(self) -> str:
        """'where:offset: reason', e.g. 'events.jsonl:12: field 'ts': ...'."""
        where = self.origin.source.removeprefix("file:")
        return f"{where}:{self.origin.offset}: {self.reason}"
