"""The batch core: raw messages in, stored profiles and profile-update records out.

`fold(records)` validates a batch, reads the profiles it needs (from the cache of what this
process stored last, else from the store), drops what was applied before, encodes each
distinct text once, and folds the events into in-memory pending profiles. `flush()` writes
every pending profile once, under its partition's fence, and returns the profile updates
to publish. A worker folds several batches and flushes when its window closes, so a user
with many events is written once for all of them; it acknowledges the batches' offsets
only after the flush and the publication (a crash before loses nothing: the events come
again and nothing was stored). `process(records)` is fold then flush, for the embedded
mode and tests. It knows nothing of Faust, Kafka or files, so the embedded `run`, the
streaming worker and the tests cannot disagree about the math. Bad input comes back as
`Rejection`s for the caller to persist; it never raises for input.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from interest_stream.encoders.base import Encoder
from interest_stream.schemas.events import ValidationRules
from interest_stream.schemas.records import RawRecord, Rejection
from interest_stream.schemas.updates import ProfileUpdate, profile_update
from interest_stream.store.base import ItemCatalog, ProfileStore, ProfileWrite
from interest_stream.streams.core import pauses as points
from interest_stream.streams.core.calibration import CatalogueCalibration
from interest_stream.streams.core.pauses import PausePoints
from interest_stream.streams.core.prepare import (
    Candidate,
    Weigher,
    resolve_items,
    validate,
)
from interest_stream.streams.core.profile_cache import ProfileCache
from interest_stream.streams.core.routing import Forward, Routing
from interest_stream.streams.errors import ModelMismatchError, StoreError
from interest_stream.streams.interest.horizons import InterestParams
from interest_stream.streams.interest.profile import (
    UserProfile,
    WeightedEvent,
    fold_events,
    redelivered,
    select_new,
    with_clusters,
)

log = logging.getLogger(__name__)

MAX_FENCE_RETRIES = 8


@dataclass
class BatchOutcome:
    """What a fold, a flush, or both did; the caller publishes `updates` and
    `reannounced`, and persists `rejects`.

    `reannounced` holds the stored profiles of users whose events all came again from at or
    below their applied offsets: a process may have stored them and died before announcing
    them, so a streaming caller publishes these too (the same versions again; consumers of
    a compacted, at-least-once topic see a repeat at most). The embedded mode ignores them.
    """

    updates: list[ProfileUpdate] = field(default_factory=list)
    reannounced: list[ProfileUpdate] = field(default_factory=list)
    rejects: list[Rejection] = field(default_factory=list)
    forwards: list[Forward] = field(default_factory=list)  # events for another partition
    folded: int = 0  # events folded into pending profiles
    applied: int = 0  # events in profiles a flush stored
    duplicates: int = 0
    erased: int = 0  # events of erased users from before their erasure: dropped
    users: int = 0  # users with new events in this fold
    writes: int = 0  # profiles stored by this flush
    bytes_written: int = 0
    lost_fences: int = 0
    texts_encoded: int = 0
    cached_reads: int = 0
    store_reads: int = 0
    encode_seconds: float = 0.0
    read_seconds: float = 0.0
    fold_seconds: float = 0.0
    write_seconds: float = 0.0

    def merge(self, other: BatchOutcome) -> BatchOutcome:
        """This outcome with `other`'s lists appended and counters added."""
        merged = BatchOutcome()
        for name, value in vars(self).items():
            theirs = getattr(other, name)
            setattr(merged, name, value + theirs)
        return merged


@dataclass
class Pending:
    """A user folded since the last flush: the profile to write, the version it was
    folded onto, its fence, and the events folded since (re-folded if the fence is lost)."""

    profile: UserProfile
    base_version: int
    fence: str
    base_domains: frozenset[str]
    events: list[WeightedEvent] = field(default_factory=list)
    applied: int = 0
    # Only re-announced: a write of the stored version again, under the fence, so that an
    # announcement read before a `forget` or a new owner's claim is never published.
    reannounce: bool = False
    clusters_due: InterestParams | None = None
    """Set while `profile`'s clusters are stale (folded without clustering): `write`
    rebuilds them once for all the folds since the last flush."""

    def write(self) -> ProfileWrite:
        if self.clusters_due is not None:
            self.profile = with_clusters(self.profile, self.clusters_due)
            self.clusters_due = None
        domains = {e.domain for e in self.events if e.domain}
        now = set(self.profile.domains)
        changed = tuple(sorted(d for d in now if d in domains or d not in self.base_domains))
        dropped = tuple(sorted(self.base_domains - now))
        return ProfileWrite(self.profile, self.base_version, self.fence, changed, dropped)


class BatchCore:
    """Folds batches of raw records into pending profiles and flushes them to the store.
    Used from one thread at a time (the worker's batch thread, or the caller's)."""

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
        calibrate_background: bool = False,
        clock: Callable[[], float] = time.time,
        pauses: PausePoints | None = None,
        routing: Routing | None = None,
        reannounce: bool = False,
    ) -> None:
        self.encoder = encoder
        self.routing = routing
        self.pauses = pauses or PausePoints()
        self.store = store
        self.items = items
        self.rules = rules or ValidationRules()
        self.include_vectors = include_vectors
        self._clock = clock
        self.calibration = CatalogueCalibration(
            store,
            encoder.model_id,
            params or InterestParams(),
            calibrate_background=calibrate_background,
        )
        self._weigher = Weigher(encoder, self.calibration.params)
        self.cache = ProfileCache(profile_cache_size)
        self.pending: dict[str, Pending] = {}
        # What flushes stored and did not return yet (a flush that raised keeps them for
        # the retry, so a stored profile is always announced).
        self._stored = BatchOutcome()
        # Fences claimed anew whose pending users are not re-read yet (see `_claim`).
        self._unread: set[str] = set()
        self.reannounce = reannounce

    @property
    def params(self) -> InterestParams:
        return self.calibration.params

    def process(self, records: Sequence[RawRecord]) -> BatchOutcome:
        """Fold one batch and flush it. Raises StoreError if the store fails."""
        return self.fold(records).merge(self.flush())

    # -- fold ------------------------------------------------------------------------------

    def fold(self, records: Sequence[RawRecord]) -> BatchOutcome:
        """Validate a batch and fold its new events into the pending profiles."""
        outcome = BatchOutcome()
        candidates, outcome.rejects = validate(records, self.rules, self._clock())
        if self.routing is not None:
            candidates = self._route(candidates, outcome)
        candidates, known = resolve_items(
            candidates, self.items, self.encoder.model_id, outcome.rejects
        )
        if not candidates:
            return outcome
        by_user: dict[str, list[Candidate]] = defaultdict(list)
        for candidate in candidates:
            by_user[candidate.event.user_id].append(candidate)
        fences = {user_id: items[0].fence for user_id, items in by_user.items()}
        current = self._current(fences, outcome)
        self.pauses.reach(points.AFTER_READ)
        # Dedup before encoding, so a replayed batch costs a read and nothing else.
        fresh: dict[str, list[Candidate]] = {}
        for user_id, items in by_user.items():
            profile = current.get(user_id)
            new, skipped = select_new(profile, items)
            outcome.duplicates += skipped
            if new:
                fresh[user_id] = new
            elif (
                self.reannounce
                and profile is not None
                and user_id not in self.pending
                and redelivered(profile, items)
            ):
                self.pending[user_id] = Pending(
                    profile,
                    profile.version,
                    items[0].fence,
                    frozenset(profile.domains),
                    reannounce=True,
                )
        outcome.users = len(fresh)
        if not fresh:
            return outcome
        encoded = self._weigher.encode([c for items in fresh.values() for c in items], known)
        outcome.encode_seconds += encoded.seconds
        outcome.texts_encoded += encoded.encoded
        started = time.perf_counter()
        for user_id, events in self._weigher.weigh(fresh, encoded).items():
            self._fold_user(user_id, events, fresh[user_id][0].fence, current, outcome)
        outcome.fold_seconds += time.perf_counter() - started
        return outcome

    def _route(self, candidates: list[Candidate], outcome: BatchOutcome) -> list[Candidate]:
        """Keep the events that arrived on their user's partition; the others become
        forwards to it (streams/core/routing.py), folded by that partition's owner."""
        assert self.routing is not None
        kept = []
        for candidate in candidates:
            target = self.routing.misplaced(candidate.event.user_id, candidate.origin)
            if target is None:
                kept.append(candidate)
            else:
                outcome.forwards.append(
                    Forward(candidate.event.user_id, candidate.raw, candidate.origin, target)
                )
        return kept

    def _current(self, fences: dict[str, str], outcome: BatchOutcome) -> dict[str, UserProfile]:
        """The profile each user (-> its fence) is at now: pending, else cached, else stored
        (absent for new users); erased users come back as empty profiles that know their
        erasure.

        Claim, then read: the users' fences are held before anything is read, so whatever
        another writer (a new owner, `forget`) does after this point makes this writer's
        flush lose and fold again. Under a fence claimed just now, nothing read before
        counts: its users are read from the store, and their pending events re-folded.
        """
        self._claim(set(fences.values()))
        self.pauses.reach(points.AFTER_CLAIM)
        stale = {u for u, fence in fences.items() if fence in self._unread}
        self._rebase_unread(outcome)
        found = {u: self.pending[u].profile for u in fences if u in self.pending}
        cached, missing = self.cache.lookup(u for u in fences if u not in found and u not in stale)
        outcome.cached_reads += len(cached)
        found.update(cached)
        missing += sorted(u for u in stale if u not in found)
        if missing:
            found.update(self._read(missing, outcome))
        return found

    def _read(self, user_ids: list[str], outcome: BatchOutcome) -> dict[str, UserProfile]:
        """Stored profiles, each knowing its user's latest erasure (every read checks it:
        events from before an erasure are never folded, whatever else was read)."""
        started = time.perf_counter()
        stored = self.store.get(user_ids)
        erased = self.store.erased(user_ids)
        outcome.read_seconds += time.perf_counter() - started
        outcome.store_reads += len(user_ids)
        for user_id, erasure in erased.items():
            profile = stored.get(user_id) or self._new(user_id)
            forgotten_at = max(profile.forgotten_at or erasure.at, erasure.at)
            stored[user_id] = replace(
                profile, forgotten_at=forgotten_at, erased_before=dict(erasure.before)
            )
        self.cache.put(stored)
        return stored

    def _new(self, user_id: str) -> UserProfile:
        return UserProfile.new(user_id, self.encoder.model_id, self.encoder.dim, self.params)

    def _fold_user(
        self,
        user_id: str,
        events: list[WeightedEvent],
        fence: str,
        current: dict[str, UserProfile],
        outcome: BatchOutcome,
    ) -> None:
        profile = current.get(user_id) or self._new(user_id)
        if profile.model_id != self.encoder.model_id:
            raise ModelMismatchError(
                f"profile of {user_id!r} was built with {profile.model_id}, this process"
                f" encodes with {self.encoder.model_id}; use the same encoder or a new store"
            )
        # Clusters are rebuilt once, when the flush writes the profile, not after every fold.
        result = fold_events(profile, events, self.params, updated_at=self._clock(), cluster=False)
        outcome.duplicates += result.duplicates
        outcome.erased += result.erased
        if not result.applied:
            return
        outcome.folded += result.applied
        pending = self.pending.get(user_id)
        if pending is None:
            pending = Pending(profile, profile.version, fence, frozenset(profile.domains))
            self.pending[user_id] = pending
        pending.reannounce = False  # its update announces it
        pending.profile = result.profile
        pending.clusters_due = self.params
        pending.events.extend(events)
        pending.applied += result.applied

    # -- flush -----------------------------------------------------------------------------

    def flush(self) -> BatchOutcome:
        """Write every pending profile once (under its fence); returns the updates.

        If it raises (StoreError), what it stored before is kept for the next flush to
        return, and what it did not is still pending: calling it again goes on.
        """
        outcome = self._stored
        self._rebase_unread(outcome)  # a fold that raised between a claim and its re-read
        pending = dict(self.pending)
        for attempt in range(MAX_FENCE_RETRIES):
            if not pending:
                break
            if attempt:
                self._refold(pending, outcome)
            writes = [p.write() for p in pending.values()]
            self.pauses.reach(points.BEFORE_WRITE)
            started = time.perf_counter()
            try:
                result = self.store.apply(writes) if writes else None
            except BaseException:
                # Outcomes unknown: read these users from the store next time.
                self.cache.drop(pending)
                raise
            self.pauses.reach(points.AFTER_WRITE)
            outcome.write_seconds += time.perf_counter() - started
            if result is None:
                pending = {}
                break
            outcome.writes += len(result.won)
            outcome.bytes_written += result.bytes_written
            for user_id in result.won:
                stored = pending.pop(user_id)
                del self.pending[user_id]
                outcome.applied += stored.applied
                self.cache.put({user_id: stored.profile})
                update = profile_update(stored.profile, include_vectors=self.include_vectors)
                (outcome.reannounced if stored.reannounce else outcome.updates).append(update)
            if result.lost:
                # Another writer claimed these users' partition (a rebalance, an erasure):
                # anything cached may be stale. Re-read and fold the events again; dedup
                # skips whatever that writer already applied.
                outcome.lost_fences += len(result.lost)
                self.cache.invalidate()
                log.info("fence lost for %d users, re-reading them", len(result.lost))
        if pending:
            raise StoreError(
                f"fences still lost after {MAX_FENCE_RETRIES} tries: {sorted(pending)[:5]}"
            )
        self.pending = {}  # users the other writer had fully applied: nothing to write
        self._stored = BatchOutcome()
        return outcome

    def _claim(self, fences: set[str]) -> None:
        """Hold `fences`; those claimed anew are unread until their pending users have been
        re-folded onto a fresh read (kept across errors: a retry still re-reads), and
        nothing cached from before counts."""
        claimed = self.store.claim(fences)
        if claimed:
            self._unread |= claimed
            self.cache.invalidate()

    def _rebase_unread(self, outcome: BatchOutcome) -> None:
        """Re-fold every pending user under a fence claimed anew (in this batch or not)
        onto a fresh read; then those fences are read."""
        unread = set(self._unread)
        if not unread:
            return
        rebase = {u: p for u, p in self.pending.items() if p.fence in unread}
        if rebase:
            remaining = dict(rebase)
            self._refold(remaining, outcome)
            for user_id in rebase.keys() - remaining.keys():
                del self.pending[user_id]  # the other writer had applied all its events
        self._unread -= unread

    def _refold(self, pending: dict[str, Pending], outcome: BatchOutcome) -> None:
        """Fold the pending events of users whose write was lost onto what is stored now,
        read under a new claim of their fences. `pending` holds every pending user under
        those fences."""
        fences = {entry.fence for entry in pending.values()}
        self._claim(fences)
        self.pauses.reach(points.AFTER_CLAIM)
        stored = self._read(sorted(pending), outcome)
        for user_id, entry in pending.items():
            profile = stored.get(user_id) or self._new(user_id)
            if entry.reannounce:
                # Announce what is stored now, if anything (an erased user: nothing).
                entry.profile, entry.base_version = profile, profile.version
                entry.base_domains = frozenset(profile.domains)
                continue
            result = fold_events(profile, entry.events, self.params, updated_at=self._clock())
            outcome.erased += result.erased
            entry.profile = result.profile
            entry.base_version = profile.version
            entry.base_domains = frozenset(profile.domains)
            entry.applied = result.applied
        # Users whose events the other writer had all applied are done: nothing to write.
        done = [
            u
            for u, entry in pending.items()
            if (entry.base_version == 0 if entry.reannounce else not entry.applied)
        ]
        for user_id in done:
            del pending[user_id]
        self._unread -= fences

    def discard(self) -> None:
        """Forget pending profiles without writing them (their partitions were revoked:
        the events come again to whoever owns them now) and empty the cache."""
        self.pending.clear()
        self._stored = BatchOutcome()
        self._unread.clear()
        self.cache.invalidate()
