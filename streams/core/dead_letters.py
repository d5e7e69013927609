"""A rejected record as the dead-letter topic holds it: the original bytes, where they came
from and why, bounded in size.

The DLQ must be able to take any record the broker accepted: an input may be as large as
the topic's `max.message.bytes`, while our producer's requests are capped lower, and a
record the DLQ refuses would stop the worker on it for good (and every worker that takes
the partition after it). Up to `max_bytes` the value is the original record; beyond, it is
the record's first `max_bytes` bytes, and the headers say so and give the original size,
so the whole record can be read back from its topic, partition and offset while the
topic's retention keeps it.
"""

from __future__ import annotations

from dataclasses import dataclass

from interest_stream.schemas.records import Rejection

DEFAULT_MAX_BYTES = 512 * 1024
"""Well under the producer's 1,000,000-byte request cap, headers and batch overhead included."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One DLQ record: key and value to send, and its headers."""

    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]
    truncated: bool


def dead_letter(rejection: Rejection, max_bytes: int = DEFAULT_MAX_BYTES) -> DeadLetter:
    """The DLQ record of `rejection`: its original bytes, cut to `max_bytes` when longer."""
    origin = rejection.origin
    raw = rejection.raw
    truncated = len(raw) > max_bytes
    reason = rejection.reason
    if truncated:
        reason += (
            f" (record of {len(raw)} bytes: the DLQ keeps its first {max_bytes}; read it whole"
            f" from {origin.topic}:{origin.partition} at offset {origin.offset})"
        )
    headers = [
        ("reason", reason.encode()),
        ("reason.kind", rejection.label().encode()),  # a fixed vocabulary, for routing
        ("source.topic", (origin.topic or "").encode()),
        ("source.partition", str(origin.partition).encode()),
        ("source.offset", str(origin.offset).encode()),
    ]
    if origin.first_source is not None:  # forwarded: where it first arrived, too
        headers.append(("first.source", origin.first_source.encode()))
        headers.append(("first.offset", str(origin.first_offset).encode()))
    if truncated:
        headers.append(("original.bytes", str(len(raw)).encode()))
    return DeadLetter(origin.key, raw[:max_bytes] if truncated else raw, headers, truncated)
