"""The ANN copies of profile vectors, refreshed in the background, latest profile wins.

Writing an indexed vector inserts it into the vector index's in-memory graph, and on the
measured setup that insert, not the fenced profile write, was most of a profile write's
cost. The copies are derived and approximate (ANN itself is), so they leave the critical
path: after a won write the store offers the profile here, and a background thread writes
the copies whose indexed vectors the profile has moved away from (cosine below the
threshold). Under load, offers for one user coalesce, so the index sees at most one
write per user per round however fast profiles change.

A user's copy is also rewritten at most once per `min_interval_s`: a busy user's changes
within the interval become one write of the latest profile when it is over. Together with
the movement threshold this bounds how stale a copy may be: its vectors are within
`min_cosine` of the profile's, or the profile changed less than `min_interval_s` (plus one
round of writes) ago; `flush` writes what is pending at once, interval or not.

What this gives up: a copy may lag its profile as above; a copy pending when the process
dies is rewritten only with the user's next change (the profile itself is durable; its
direction does not change without new events, since both horizons decay uniformly).
`flush` waits for the pending copies; `close` flushes.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from interest_stream.store.cassandra.statements import HORIZONS
from interest_stream.streams.interest.profile import UserProfile

log = logging.getLogger(__name__)

Vector = npt.NDArray[np.floating]
AnnVectors = tuple[Vector | None, Vector | None]
"""A profile's (short, long) unit vectors (the order of HORIZONS); None while that horizon
is empty."""


@dataclass(frozen=True)
class AnnCopy:
    """One copy to write: the user, the profile version it is taken from, its vectors."""

    user_id: str
    version: int
    model_id: str
    updated_at: float
    vectors: AnnVectors
    ts: int = 0
    """The write timestamp (µs) of the profile write it copies: an erasure's later
    timestamp shadows a copy that arrives after it."""


def ann_vectors(profile: UserProfile) -> AnnVectors:
    state = profile.state
    return state.short.profile(), state.long.profile()


def moved(
    current: AnnVectors,
    indexed: AnnVectors | None,
    min_cosine: float,
    horizons: Sequence[str] = HORIZONS,
) -> bool:
    """Whether `current` has moved away from its indexed copy (or there is none), in one
    of the `horizons` the vector index covers (the others are not written or queried)."""
    if indexed is None:
        return True
    for horizon, now, then in zip(HORIZONS, current, indexed, strict=True):
        if horizon not in horizons:
            continue
        if now is None or then is None:
            if now is not then:
                return True
        elif float(np.dot(now, then)) < min_cosine:
            return True
    return False


WriteCopies = Callable[[Sequence[AnnCopy]], Sequence[BaseException | None]]
"""Writes copies concurrently; per copy None, or the error it failed with."""


class AnnRefresher:
    """Background writer of ANN copies; thread-safe. The thread starts on the first offer."""

    def __init__(
        self,
        write: WriteCopies,
        *,
        min_cosine: float,
        min_interval_s: float = 0.0,
        horizons: Sequence[str] = HORIZONS,
        remembered: int = 50_000,
        round_size: int = 256,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._write = write
        self._min_cosine = min_cosine
        self._min_interval = min_interval_s
        self._horizons = tuple(horizons)
        self._clock = clock
        # user -> when this process last wrote the user's copy (clock time), for the interval.
        self._written_at: dict[str, float] = {}
        self._flushing = 0
        self._remembered = remembered
        self._round_size = round_size
        self._cond = threading.Condition()
        self._pending: OrderedDict[str, AnnCopy] = OrderedDict()
        self._in_flight: set[str] = set()
        # user -> the vectors last written by this process (float16: half the memory).
        self._indexed: OrderedDict[str, AnnVectors] = OrderedDict()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.written = 0
        self.skipped = 0
        self.failed = 0

    def offer(self, profiles: Sequence[tuple[UserProfile, int]]) -> None:
        """Queue the copies of profiles that moved away from theirs; the rest are skipped."""
        with self._cond:
            for profile, ts in profiles:
                vectors = ann_vectors(profile)
                indexed = self._indexed.get(profile.user_id)
                if not moved(vectors, indexed, self._min_cosine, self._horizons):
                    self.skipped += 1
                    self._pending.pop(profile.user_id, None)  # an older pending copy
                    continue
                copy = AnnCopy(
                    profile.user_id,
                    profile.version,
                    profile.model_id,
                    profile.updated_at,
                    vectors,
                    ts,
                )
                self._pending[profile.user_id] = copy
                self._pending.move_to_end(profile.user_id)
            if self._pending:
                self._start()
                self._cond.notify_all()

    def forget(self, user_id: str) -> None:
        """Drop the user's pending copy and wait until none of theirs is in flight (an
        erasure must not race a copy being written)."""
        with self._cond:
            self._pending.pop(user_id, None)
            self._indexed.pop(user_id, None)
            self._written_at.pop(user_id, None)
            self._cond.wait_for(lambda: user_id not in self._in_flight, timeout=60)

    def flush(self, timeout: float = 60.0) -> bool:
        """Wait until every pending copy is written; False if `timeout` ran out first."""
        with self._cond:
            self._flushing += 1  # pending copies are due now, whatever their interval
            self._cond.notify_all()
            try:
                return self._cond.wait_for(
                    lambda: not self._pending and not self._in_flight, timeout=timeout
                )
            finally:
                self._flushing -= 1

    def close(self, timeout: float = 30.0) -> None:
        """Write what is pending (up to `timeout`), then stop the thread."""
        if not self.flush(timeout):
            log.warning(
                "%d ANN copies not written at close; they follow the users' next changes",
                len(self._pending),
            )
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._pending)

    def _start(self) -> None:
        if self._thread is None and not self._stopping:
            self._thread = threading.Thread(target=self._run, name="ann-refresher", daemon=True)
            self._thread.start()

    def _due_in(self, user_id: str, now: float) -> float:
        """Seconds until the user's copy may be written again (<= 0: now)."""
        if self._flushing:
            return 0.0
        written = self._written_at.get(user_id)
        return 0.0 if written is None else written + self._min_interval - now

    def _take(self) -> list[AnnCopy] | None:
        with self._cond:
            while True:
                self._cond.wait_for(lambda: self._pending or self._stopping)
                if self._stopping:
                    return None
                now = self._clock()
                copies: list[AnnCopy] = []
                wait = math.inf
                for user_id in list(self._pending):
                    if len(copies) >= self._round_size:
                        break
                    due_in = self._due_in(user_id, now)
                    if due_in <= 0:
                        copies.append(self._pending.pop(user_id))
                    else:
                        wait = min(wait, due_in)
                if copies:
                    self._in_flight = {c.user_id for c in copies}
                    return copies
                # Nothing due yet: sleep until the first is, or a flush or new offer comes.
                self._cond.wait(timeout=wait)

    def _run(self) -> None:
        pause = 0.0
        while (copies := self._take()) is not None:
            try:
                outcomes: Sequence[BaseException | None] = self._write(copies)
            except Exception as exc:  # the writer itself failed: treat as all failed
                outcomes = [exc] * len(copies)
            failures = [(c, e) for c, e in zip(copies, outcomes, strict=True) if e is not None]
            with self._cond:
                for copy, error in zip(copies, outcomes, strict=True):
                    if error is None:
                        self._remember(copy)
                    elif copy.user_id not in self._pending:  # nothing newer came in
                        self._pending[copy.user_id] = copy
                self.written += len(copies) - len(failures)
                self.failed += len(failures)
                self._in_flight = set()
                self._cond.notify_all()
            if failures:
                pause = min(max(0.1, pause * 2), 5.0)
                log.warning(
                    "%d of %d ANN copy writes failed (first: %s), retrying in %.1f s",
                    len(failures),
                    len(copies),
                    failures[0][1],
                    pause,
                )
                time.sleep(pause)
            else:
                pause = 0.0

    def _remember(self, copy: AnnCopy) -> None:
        short, long = (None if v is None else v.astype(np.float16) for v in copy.vectors)
        self._indexed[copy.user_id] = (short, long)
        self._indexed.move_to_end(copy.user_id)
        self._written_at[copy.user_id] = self._clock()
        while len(self._indexed) > self._remembered:
            forgotten, _ = self._indexed.popitem(last=False)
            self._written_at.pop(forgotten, None)
