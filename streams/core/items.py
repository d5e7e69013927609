"""The item catalogue's write path: `items` messages in, embedded items in the store.

Shared by the worker's items agent and `run --items`: validate each message, encode the
texts that changed, upsert; a null value erases the item. Bad messages become rejections.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from interest_stream.encoders.base import Encoder
from interest_stream.schemas.events import Item, parse_item
from interest_stream.schemas.records import RawRecord, Rejection
from interest_stream.store.base import ItemCatalog, StoredItem


@dataclass
class ItemsOutcome:
    stored: int = 0
    erased: int = 0
    rejects: list[Rejection] = field(default_factory=list)


def apply_items(
    records: Sequence[RawRecord | tuple[RawRecord, bool]],
    encoder: Encoder,
    catalog: ItemCatalog,
) -> ItemsOutcome:
    """Store a batch of `items` messages. A record whose value is a tombstone is passed as
    `(record, True)`, since RawRecord.value cannot be None."""
    outcome = ItemsOutcome()
    latest: dict[str, Item] = {}
    for entry in records:
        record, tombstone = entry if isinstance(entry, tuple) else (entry, False)
        parsed = parse_item(None if tombstone else record.value, record.origin)
        if isinstance(parsed, Rejection):
            outcome.rejects.append(parsed)
        else:
            latest[parsed.item_id] = parsed  # compacted topic: the last value wins
    upserts = [item for item in latest.values() if item.text is not None]
    if upserts:
        vectors = encoder.encode([item.text or "" for item in upserts])
        catalog.put_items(
            [
                StoredItem(item.item_id, item.text or "", item.domain, encoder.model_id, vector)
                for item, vector in zip(upserts, vectors, strict=True)
            ]
        )
        outcome.stored = len(upserts)
    for item in latest.values():
        if item.text is None:
            outcome.erased += catalog.delete_item(item.item_id)
    return outcome
