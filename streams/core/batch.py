"""The batch core: raw messages in, stored profiles and profile-update records out.

validate -> group by user -> read profiles -> dedup -> encode unique texts -> weight ->
fold per user -> one fenced write per touched user -> update records. It knows nothing of
Faust, Kafka or files: the embedded `run`, the streaming worker and the tests all call
`BatchCore.process`, so they cannot disagree about the math. Bad input comes back as
`Rejection`s for the caller to persist (rejects file or DLQ); it never raises for input.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from interest_stream.encoders.base import Encoder
from interest_stream.schemas.events import Event, ValidationRules, parse_event
from interest_stream.schemas.records import Provenance, RawRecord, Rejection
from interest_stream.schemas.updates import ProfileUpdate, profile_update
from interest_stream.store.base import ItemCatalog, ProfileStore, ProfileWrite
from interest_stream.streams.core.profile_cache import ProfileCache
from interest_stream.streams.core.sentiment import SentimentScorer
from interest_stream.streams.errors import ModelMismatchError, StoreError
from interest_stream.streams.model.horizons import InterestParams
from interest_stream.streams.model.profile import (
    UserProfile,
    WeightedEvent,
    fold_events,
    redelivered,
    select_new,
)
from interest_stream.streams.model.sentiment import event_weight

log = logging.getLogger(__name__)

MAX_FENCE_RETRIES = 8


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


def _text(event: Event) -> str:
    """The event's text; item-only clicks have had theirs filled in before this is used."""
    if event.text is None:
        raise AssertionError(f"event {event.event_id!r} reached encoding without text")
    return event.text


@dataclass
class BatchOutcome:
    """What one batch did; the caller publishes `updates` and persists `rejects`.

    `reannounced` holds the stored profiles of users whose events all came again from at or
    below their applied offsets: a process may have stored them and died before announcing
    them, so a streaming caller publishes these too (the same versions again; consumers of
    a compacted, at-least-once topic see a repeat at most). The embedded mode ignores them.
    """

    updates: list[ProfileUpdate] = field(default_factory=list)
    reannounced: list[ProfileUpdate] = field(default_factory=list)
    rejects: list[Rejection] = field(default_factory=list)
    applied: int = 0
    duplicates: int = 0
    users: int = 0
    writes: int = 0
    lost_fences: int = 0
    texts_encoded: int = 0
    cached_reads: int = 0
    encode_seconds: float = 0.0
    read_seconds: float = 0.0
    fold_seconds: float = 0.0
    write_seconds: float = 0.0


class BatchCore:
    """Turns batches of raw records into profile writes. Safe to call from one thread."""

    def __init__(
        self,
        *,
        encoder: Encoder,
        store: ProfileStore,
        params: InterestParams | None = None,
        rules: ValidationRules | None = None,
        include_vectors: bool = True,
        items: ItemCatalog | None = None,
        profile_cache_size: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.encoder = encoder
        self.store = store
        self.items = items
        self.params = params or InterestParams()
        self.rules = rules or ValidationRules()
        self.include_vectors = include_vectors
        self._clock = clock
        self._sentiment = SentimentScorer(encoder)
        self.cache = ProfileCache(profile_cache_size)

    def validate(self, records: Sequence[RawRecord]) -> tuple[list[Candidate], list[Rejection]]:
        """Split records into valid events (with their origin) and rejections."""
        now = self._clock()
        events: list[Candidate] = []
        rejects: list[Rejection] = []
        for record in records:
            parsed = parse_event(record.value, record.origin, now=now, rules=self.rules)
            if isinstance(parsed, Rejection):
                rejects.append(parsed)
            else:
                events.append(Candidate(parsed, record.origin, record.value))
        return events, rejects

    def process(self, records: Sequence[RawRecord]) -> BatchOutcome:
        """Validate, fold and store one batch. Raises StoreError if the store fails."""
        outcome = BatchOutcome()
        candidates, outcome.rejects = self.validate(records)
        candidates, known_vectors = self._resolve_items(candidates, outcome.rejects)
        if not candidates:
            return outcome
        by_user: dict[str, list[Candidate]] = defaultdict(list)
        for candidate in candidates:
            by_user[candidate.event.user_id].append(candidate)
        stored = self._read(sorted(by_user), outcome)
        # Dedup before encoding, so a replayed batch costs a read and nothing else.
        fresh: dict[str, list[Candidate]] = {}
        for user_id, items in by_user.items():
            current = stored.get(user_id)
            new, skipped = select_new(current, items)
            outcome.duplicates += skipped
            if new:
                fresh[user_id] = new
            elif current is not None and redelivered(current, items):
                update = profile_update(current, include_vectors=self.include_vectors)
                outcome.reannounced.append(update)
        outcome.users = len(fresh)
        if not fresh:
            return outcome
        weighted = self._weigh(fresh, outcome, known_vectors)
        self._fold_and_write(weighted, outcome, stored)
        return outcome

    def _read(self, user_ids: list[str], outcome: BatchOutcome) -> dict[str, UserProfile]:
        """Profiles of `user_ids`: from the cache where it has them, else from the store."""
        found, missing = self.cache.lookup(user_ids)
        outcome.cached_reads += len(found)
        if missing:
            started = time.perf_counter()
            read = self.store.get(missing)
            outcome.read_seconds += time.perf_counter() - started
            self.cache.put(read)
            found.update(read)
        return found

    def _resolve_items(
        self, candidates: list[Candidate], rejects: list[Rejection]
    ) -> tuple[list[Candidate], dict[str, npt.NDArray[np.float32]]]:
        """Fill in the text (and reuse the stored vector) of clicks that name only an item.

        A click naming an unknown item is rejected to the DLQ rather than held back: the
        DLQ record can be replayed once the item is published, and the partition does
        not stall behind it.
        """
        wanted = sorted(
            {
                c.event.item_id
                for c in candidates
                if c.event.text is None and c.event.item_id is not None
            }
        )
        if not wanted:
            return candidates, {}
        found = self.items.get_items(wanted) if self.items is not None else {}
        resolved: list[Candidate] = []
        vectors: dict[str, npt.NDArray[np.float32]] = {}
        for candidate in candidates:
            event = candidate.event
            if event.text is not None:
                resolved.append(candidate)
                continue
            item = found.get(event.item_id or "")
            if item is None:
                rejects.append(
                    Rejection(
                        candidate.raw,
                        f"field 'item_id': unknown item"
                        f" {event.item_id!r} and the click carries no text",
                        candidate.origin,
                    )
                )
                continue
            if item.model_id == self.encoder.model_id:
                vectors[item.text] = item.vector
            domain = event.domain or item.domain
            resolved.append(replace(candidate, event=replace(event, text=item.text, domain=domain)))
        return resolved, vectors

    def _weigh(
        self,
        fresh: dict[str, list[Candidate]],
        outcome: BatchOutcome,
        known: dict[str, npt.NDArray[np.float32]],
    ) -> dict[str, list[WeightedEvent]]:
        flat = [c.event for items in fresh.values() for c in items]
        texts = list(dict.fromkeys(_text(event) for event in flat))
        missing = [text for text in texts if text not in known]
        started = time.perf_counter()
        encoded = self.encoder.encode(missing) if missing else None
        outcome.encode_seconds += time.perf_counter() - started
        outcome.texts_encoded += len(missing)
        # Items' stored vectors stand in for encoding their titles again.
        rows = [known[t] for t in texts if t in known]
        texts = [t for t in texts if t in known] + missing
        if encoded is not None:
            rows.extend(encoded)
        vectors = np.stack(rows)
        row_of = {text: i for i, text in enumerate(texts)}
        unrated = sorted({_text(e) for e in flat if e.type == "review" and e.rating is None})
        sentiment: dict[str, float] = {}
        if unrated:
            scores = self._sentiment.score(vectors[[row_of[t] for t in unrated]])
            sentiment = dict(zip(unrated, (float(s) for s in scores), strict=True))
        weighted: dict[str, list[WeightedEvent]] = {}
        for user_id, items in fresh.items():
            weighted[user_id] = [
                WeightedEvent(
                    event_id=c.event.event_id,
                    ts=c.event.ts,
                    weight=event_weight(
                        c.event.type,
                        self.params,
                        rating=c.event.rating,
                        text_sentiment=sentiment.get(_text(c.event)),
                    ),
                    text=_text(c.event),
                    vector=vectors[row_of[_text(c.event)]],
                    domain=c.event.domain,
                    source=c.source,
                    offset=c.offset,
                )
                for c in items
            ]
        return weighted

    def _fold_and_write(
        self,
        by_user: dict[str, list[WeightedEvent]],
        outcome: BatchOutcome,
        stored: dict[str, UserProfile],
    ) -> None:
        pending = dict(by_user)
        for attempt in range(MAX_FENCE_RETRIES):
            if attempt:
                stored = self._read(sorted(pending), outcome)  # the losers left the cache
            writes: list[ProfileWrite] = []
            folded: dict[str, tuple[int, int]] = {}
            started = time.perf_counter()
            for user_id in sorted(pending):
                current = stored.get(user_id) or UserProfile.new(
                    user_id, self.encoder.model_id, self.encoder.dim
                )
                if current.model_id != self.encoder.model_id:
                    raise ModelMismatchError(
                        f"profile of {user_id!r} was built with {current.model_id}, this process"
                        f" encodes with {self.encoder.model_id}; use the same encoder"
                        " or a new store"
                    )
                result = fold_events(
                    current, pending[user_id], self.params, updated_at=self._clock()
                )
                folded[user_id] = (result.applied, result.duplicates)
                if result.applied:
                    writes.append(ProfileWrite(result.profile, current.version))
                else:
                    outcome.duplicates += result.duplicates
            outcome.fold_seconds += time.perf_counter() - started
            started = time.perf_counter()
            try:
                won = set(self.store.apply(writes).won) if writes else set()
            except BaseException:
                # Outcomes unknown: read these users from the store next time.
                self.cache.drop(w.profile.user_id for w in writes)
                raise
            outcome.write_seconds += time.perf_counter() - started
            outcome.writes += len(writes)
            for write in writes:
                user_id = write.profile.user_id
                if user_id in won:
                    applied, duplicates = folded[user_id]
                    outcome.applied += applied
                    outcome.duplicates += duplicates
                    outcome.updates.append(
                        profile_update(write.profile, include_vectors=self.include_vectors)
                    )
            lost = {w.profile.user_id for w in writes} - won
            self.cache.put(
                {w.profile.user_id: w.profile for w in writes if w.profile.user_id in won}
            )
            self.cache.drop(lost)
            outcome.lost_fences += len(lost)
            # A lost fence means another writer stored a newer version: re-read and re-fold.
            # Dedup makes the re-fold skip whatever that writer already applied.
            pending = {user_id: pending[user_id] for user_id in lost}
            if not pending:
                return
            log.info("version fence lost for %d users, re-reading", len(pending))
        raise StoreError(
            f"version fence still lost after {MAX_FENCE_RETRIES} tries: {sorted(pending)[:5]}"
        )
