"""From raw records to events ready to fold: validation, item texts, encoding, weights.

`validate` splits records into candidates (valid events with where they came from) and
rejections; `resolve_items` fills in the text of clicks that name only a catalogue item;
`Weigher` encodes each distinct text once per batch, scores the sentiment of unrated
reviews and turns candidates into `WeightedEvent`s. Bad input becomes `Rejection`s,
never exceptions.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from interest_stream.encoders.base import Encoder
from interest_stream.schemas.events import Event, ValidationRules, parse_event
from interest_stream.schemas.records import Provenance, RawRecord, Rejection, RejectKind
from interest_stream.store.base import EMBEDDED, ItemCatalog, partition_fence
from interest_stream.streams.core.sentiment import SentimentScorer
from interest_stream.streams.interest.horizons import InterestParams
from interest_stream.streams.interest.profile import WeightedEvent
from interest_stream.streams.interest.sentiment import event_weight


@dataclass(frozen=True, slots=True)
class Candidate:
    """A valid event, its original bytes and where it was delivered from, before dedup."""

    event: Event
    origin: Provenance
    raw: bytes = b""

    @property
    def event_id(self) -> str:
        return self.event.event_id

    @property
    def source(self) -> str:
        return self.origin.source

    @property
    def offset(self) -> int:
        return self.origin.offset

    @property
    def first_source(self) -> str | None:
        return self.origin.first_source

    @property
    def first_offset(self) -> int | None:
        return self.origin.first_offset

    @property
    def fence(self) -> str:
        """The write fence of this event's user: its input partition (store/base.py)."""
        partition = self.origin.partition
        return EMBEDDED if partition is None else partition_fence(partition)

    @property
    def text(self) -> str:
        """The event's text; item-only clicks have had theirs filled in before this is used."""
        if self.event.text is None:
            raise AssertionError(f"event {self.event_id!r} reached encoding without text")
        return self.event.text


def validate(
    records: Sequence[RawRecord], rules: ValidationRules, now: float
) -> tuple[list[Candidate], list[Rejection]]:
    """Split records into valid events (with their origin) and rejections."""
    events: list[Candidate] = []
    rejects: list[Rejection] = []
    for record in records:
        parsed = parse_event(record.value, record.origin, now=now, rules=rules)
        if isinstance(parsed, Rejection):
            rejects.append(parsed)
        else:
            events.append(Candidate(parsed, record.origin, record.value))
    return events, rejects


def resolve_items(
    candidates: list[Candidate],
    items: ItemCatalog | None,
    model_id: str,
    rejects: list[Rejection],
) -> tuple[list[Candidate], dict[str, npt.NDArray[np.float32]]]:
    """Fill in the text (and reuse the stored vector) of clicks that name only an item.

    A click naming an unknown item is rejected to the DLQ rather than held back: the
    DLQ record can be replayed once the item is published, and the partition does
    not stall behind it.
    """
    wanted = sorted(
        {c.event.item_id for c in candidates if c.event.text is None and c.event.item_id}
    )
    if not wanted:
        return candidates, {}
    found = items.get_items(wanted) if items is not None else {}
    resolved: list[Candidate] = []
    vectors: dict[str, npt.NDArray[np.float32]] = {}
    for candidate in candidates:
        event = candidate.event
        if event.text is not None:
            resolved.append(candidate)
            continue
        item = found.get(event.item_id or "")
        if item is None:
            reason = (
                f"field 'item_id': unknown item {event.item_id!r} and the click carries no text"
            )
            kind = RejectKind.UNKNOWN_ITEM
            rejects.append(Rejection(candidate.raw, reason, candidate.origin, kind, "item_id"))
            continue
        if item.model_id == model_id:
            vectors[item.text] = item.vector
        domain = event.domain or item.domain
        resolved.append(replace(candidate, event=replace(event, text=item.text, domain=domain)))
    return resolved, vectors


@dataclass
class Encoded:
    """The unit vector of every distinct text of a batch, and what encoding them cost."""

    vectors: npt.NDArray[np.float32]
    row_of: dict[str, int]
    encoded: int
    seconds: float


class Weigher:
    """Encodes a batch's texts and weighs its events (type weight times sentiment)."""

    def __init__(self, encoder: Encoder, params: InterestParams) -> None:
        self.encoder = encoder
        self.params = params
        self._sentiment = SentimentScorer(encoder)

    def encode(
        self, candidates: Sequence[Candidate], known: Mapping[str, npt.NDArray[np.float32]]
    ) -> Encoded:
        """Each distinct text once; items' stored vectors stand in for their titles."""
        texts = list(dict.fromkeys(c.text for c in candidates))
        missing = [text for text in texts if text not in known]
        started = time.perf_counter()
        encoded = self.encoder.encode(missing) if missing else None
        seconds = time.perf_counter() - started
        order = [t for t in texts if t in known] + missing
        rows = [known[t] for t in texts if t in known]
        if encoded is not None:
            rows.extend(encoded)
        vectors = (
            np.stack(rows).astype(np.float32)
            if rows
            else np.zeros((0, self.encoder.dim), dtype=np.float32)
        )
        return Encoded(vectors, {t: i for i, t in enumerate(order)}, len(missing), seconds)

    def weigh(
        self, by_user: Mapping[str, Sequence[Candidate]], encoded: Encoded
    ) -> dict[str, list[WeightedEvent]]:
        """The events of each user, weighted and with their vectors."""
        flat = [c for items in by_user.values() for c in items]
        unrated = sorted(
            {c.text for c in flat if c.event.type == "review" and c.event.rating is None}
        )
        sentiment: dict[str, float] = {}
        if unrated:
            rows = [encoded.row_of[t] for t in unrated]
            scores = self._sentiment.score_texts(unrated, encoded.vectors[rows])
            sentiment = dict(zip(unrated, (float(s) for s in scores), strict=True))
        return {
            user_id: [
                WeightedEvent(
                    event_id=c.event_id,
                    ts=c.event.ts,
                    weight=event_weight(
                        c.event.type,
                        self.params,
                        rating=c.event.rating,
                        text_sentiment=sentiment.get(c.text),
                    ),
                    text=c.text,
                    vector=encoded.vectors[encoded.row_of[c.text]],
                    domain=c.event.domain,
                    source=c.source,
                    offset=c.offset,
                    first_source=c.origin.first_source,
                    first_offset=c.origin.first_offset,
                )
                for c in items
            ]
            for user_id, items in by_user.items()
        }
