"""A user's whole profile and the pure function that folds a batch of events into it.

`fold_events(profile, events, params)` is the only way events change a profile, in the
embedded `run`, in the Kafka worker and in tests alike. It skips events already applied
(by source high-water offset and by recent event id) and events from before the user's
erasure, folds the rest into the user's and the per-domain horizons, refreshes the event
summary and rebuilds the clusters from it.

What is kept is bounded whatever the number of events: two horizons, at most
`max_domains` per-domain horizons (beyond that the least active domains are folded into
OTHER_DOMAIN), `summary_size` summary entries, `recent_ids` event keys and one offset per
source.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from interest_stream.streams.interest.clusters import Cluster, cluster_summary
from interest_stream.streams.interest.horizons import InterestParams, InterestState
from interest_stream.streams.interest.summary import SummaryEntry, event_key, merge_summary

OTHER_DOMAIN = "(other)"
"""Where the horizons of domains beyond `max_domains` go (the least active ones)."""


@dataclass(frozen=True, slots=True)
class WeightedEvent:
    """An event ready to fold: validated, weighted and encoded."""

    event_id: str
    ts: float
    weight: float
    text: str
    vector: npt.NDArray[np.float32]
    domain: str | None = None
    source: str | None = None
    offset: int | None = None
    # Where the event first arrived, if it was forwarded from there (routing): an erasure's
    # offset bound is about the input the producer wrote to.
    first_source: str | None = None
    first_offset: int | None = None


@dataclass(frozen=True)
class UserProfile:
    """Everything stored for one user; `version` grows by one per stored change.

    `half_lives` are the (short, long) half-lives the horizons were folded with, so a read
    decays them correctly whatever the reader's settings. `forgotten_at` is set once the
    user was erased: events from before it are dropped, later ones start a new profile.
    """

    user_id: str
    model_id: str
    dim: int
    version: int = 0
    updated_at: float = 0.0
    event_count: int = 0
    interests: InterestState | None = None
    domains: Mapping[str, InterestState] = field(default_factory=dict)
    summary: tuple[SummaryEntry, ...] = ()
    clusters: tuple[Cluster, ...] = ()
    applied_offsets: Mapping[str, int] = field(default_factory=dict)
    recent_ids: Mapping[int, float] = field(default_factory=dict)
    half_lives: tuple[float, float] = (
        InterestParams.short_half_life_s,
        InterestParams.long_half_life_s,
    )
    forgotten_at: float | None = None
    # Per input source, the first offset after the user's erasure (read with the erasure
    # record, not stored in the profile): an event from such a source is from before the
    # erasure exactly when its offset is below, whatever its time says.
    erased_before: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def new(
        cls, user_id: str, model_id: str, dim: int, params: InterestParams | None = None
    ) -> UserProfile:
        params = params or InterestParams()
        return cls(
            user_id,
            model_id,
            dim,
            interests=InterestState.empty(dim),
            half_lives=(params.short_half_life_s, params.long_half_life_s),
        )

    @property
    def state(self) -> InterestState:
        return self.interests if self.interests is not None else InterestState.empty(self.dim)

    @property
    def decays(self) -> tuple[float, float]:
        """λ of the (short, long) horizons this profile was folded with."""
        return math.log(2) / self.half_lives[0], math.log(2) / self.half_lives[1]

    def drift(self) -> float | None:
        return self.state.drift()

    @property
    def liked(self) -> tuple[Cluster, ...]:
        return tuple(c for c in self.clusters if not c.disliked)

    @property
    def disliked(self) -> tuple[Cluster, ...]:
        return tuple(c for c in self.clusters if c.disliked)


class Delivered(Protocol):
    """Anything that says which event it is and where it was delivered from (and, if it
    was forwarded to its user's partition, where it first arrived)."""

    @property
    def event_id(self) -> str: ...
    @property
    def source(self) -> str | None: ...
    @property
    def offset(self) -> int | None: ...
    @property
    def first_source(self) -> str | None: ...
    @property
    def first_offset(self) -> int | None: ...


def position(event: Delivered) -> tuple[str | None, int | None]:
    """Where dedup by offset places an event: where it first arrived. A forwarded event
    may be forwarded twice (a retried publish, a crash before the ack) and get two
    offsets in the repartition topic, but it has one first arrival; forwards of one input
    partition reach their owner in that partition's order."""
    if event.first_source is not None:
        return event.first_source, event.first_offset
    return event.source, event.offset


D = TypeVar("D", bound=Delivered)


@dataclass(frozen=True)
class FoldOutcome:
    profile: UserProfile
    applied: int
    duplicates: int
    erased: int = 0


def select_new(profile: UserProfile | None, events: Sequence[D]) -> tuple[list[D], int]:
    """Events not applied before: unseen keys, offsets above their source's high-water
    mark. Within `events`, the first delivery of an event id wins."""
    offsets = profile.applied_offsets if profile is not None else {}
    recent = profile.recent_ids if profile is not None else {}
    fresh: list[D] = []
    seen: set[int] = set()
    for event in events:
        key = event_key(event.event_id)
        if _replayed(offsets, event) or key in seen or key in recent:
            continue
        seen.add(key)
        fresh.append(event)
    return fresh, len(events) - len(fresh)


def redelivered(profile: UserProfile | None, events: Sequence[Delivered]) -> bool:
    """Whether any event comes again from at or below its source's applied high-water
    offset: a redelivery after a crash or rebalance, not a duplicate id in the stream."""
    return profile is not None and any(_replayed(profile.applied_offsets, e) for e in events)


def _replayed(offsets: Mapping[str, int], event: Delivered) -> bool:
    """Whether `event` comes from at or below its source's applied high-water offset."""
    source, offset = position(event)
    high_water = offsets.get(source or "")
    return offset is not None and high_water is not None and offset <= high_water


@dataclass(frozen=True, slots=True)
class _Columns:
    """The events of one fold as arrays, built once and shared by the user's horizons,
    its domains and its summary entries (rows in the events' order)."""

    vectors: npt.NDArray[np.float64]
    times: npt.NDArray[np.float64]
    weights: npt.NDArray[np.float64]

    @classmethod
    def of(cls, events: Sequence[WeightedEvent]) -> _Columns:
        return cls(
            np.stack([e.vector for e in events]).astype(np.float64),
            np.array([e.ts for e in events], dtype=np.float64),
            np.array([e.weight for e in events], dtype=np.float64),
        )

    def fold(
        self, state: InterestState, params: InterestParams, rows: list[int] | None = None
    ) -> InterestState:
        if rows is None:
            return state.fold(self.vectors, self.times, self.weights, params)
        return state.fold(self.vectors[rows], self.times[rows], self.weights[rows], params)


def _recent_ids(
    current: Mapping[int, float], events: Sequence[WeightedEvent], params: InterestParams
) -> dict[int, float]:
    # A duplicate id comes back soon after its original in delivery order (a producer
    # retry into the same partition): the ids applied last are what dedup by id needs,
    # whatever their event times (one topic may lag another by days); redeliveries are
    # caught by offsets. Ids older than the window in event time go first.
    merged = dict(current)
    for event in events:
        key = event_key(event.event_id)
        merged.pop(key, None)
        merged[key] = event.ts
    newest = max(merged.values())
    kept = [(k, t) for k, t in merged.items() if t >= newest - params.recent_window_s]
    return dict(kept[-params.recent_ids :])


def _offsets(current: Mapping[str, int], events: Sequence[WeightedEvent]) -> dict[str, int]:
    offsets = dict(current)
    for event in events:
        source, offset = position(event)
        if source is not None and offset is not None:
            offsets[source] = max(offsets.get(source, -1), offset)
    return offsets


def _fold_domains(
    current: Mapping[str, InterestState],
    events: Sequence[WeightedEvent],
    columns: _Columns,
    dim: int,
    params: InterestParams,
) -> dict[str, InterestState]:
    domains = dict(current)
    rows_of: dict[str, list[int]] = {}
    for row, event in enumerate(events):
        if event.domain:
            rows_of.setdefault(event.domain, []).append(row)
    for domain in sorted(rows_of):
        previous = domains.get(domain, InterestState.empty(dim))
        rows = rows_of[domain]
        # All the events in one domain (the common case): no copy of the rows.
        domains[domain] = columns.fold(previous, params, None if len(rows) == len(events) else rows)
    return _bounded_domains(domains, params)


def _bounded_domains(
    domains: dict[str, InterestState], params: InterestParams
) -> dict[str, InterestState]:
    """At most `max_domains` entries: the least active named domains (by long-term mass,
    compared at one time) are folded into OTHER_DOMAIN. Exact sums either way; which
    domain goes depends on arrival order only once a user has more than max_domains."""
    if len(domains) <= params.max_domains:
        return domains

    def activity(name: str) -> float:
        long = domains[name].long
        if long.t_ref is None or long.weight <= 0:
            return -math.inf
        return math.log(long.weight) + params.long_decay * long.t_ref

    named = sorted((n for n in domains if n != OTHER_DOMAIN), key=lambda n: (-activity(n), n))
    keep, fold = named[: params.max_domains - 1], named[params.max_domains - 1 :]
    other = domains.get(OTHER_DOMAIN)
    for name in fold:
        state = domains[name]
        other = (
            state
            if other is None
            else InterestState(
                other.short.merged(state.short, params.short_decay),
                other.long.merged(state.long, params.long_decay),
            )
        )
    bounded = {name: domains[name] for name in keep}
    if other is not None:
        bounded[OTHER_DOMAIN] = other
    return bounded


def before_erasure(profile: UserProfile, event: WeightedEvent) -> bool:
    """Whether `event` is from before the user's erasure: produced before it (its offset
    below the erasure's bound for its input source, whatever its timestamp says: a
    producer's clock may run ahead), or stamped before it (a late arrival of old activity,
    and the only test for sources the erasure did not see, such as files)."""
    source, offset = position(event)
    bound = profile.erased_before.get(source) if source is not None else None
    if bound is not None and offset is not None and offset < bound:
        return True
    return profile.forgotten_at is not None and event.ts < profile.forgotten_at


def fold_events(
    profile: UserProfile,
    events: Sequence[WeightedEvent],
    params: InterestParams,
    *,
    updated_at: float,
    cluster: bool = True,
) -> FoldOutcome:
    """Apply not-yet-seen events to a profile; returns the new profile (version + 1 if changed).

    With `cluster=False` the clusters are left as they were, stale: a caller that folds
    several batches before storing the profile clusters once, with `with_clusters`, when
    it stores (clusters are a pure function of the summary and the reference time, so the
    result is the same as clustering after every fold)."""
    fresh, duplicates = select_new(profile, events)
    erased = 0
    if profile.forgotten_at is not None or profile.erased_before:
        kept = [e for e in fresh if not before_erasure(profile, e)]
        erased, fresh = len(fresh) - len(kept), kept
    if not fresh:
        return FoldOutcome(profile, 0, duplicates, erased)
    columns = _Columns.of(fresh)
    interests = columns.fold(profile.state, params)
    new_entries = SummaryEntry.many(
        [e.event_id for e in fresh],
        [e.ts for e in fresh],
        [e.weight for e in fresh],
        [e.text for e in fresh],
        columns.vectors,  # float64 copies of the float32 vectors: the same codes
    )
    summary = merge_summary(profile.summary, new_entries, params.summary_size, params.long_decay)
    updated = replace(
        profile,
        version=profile.version + 1,
        updated_at=updated_at,
        event_count=profile.event_count + len(fresh),
        interests=interests,
        domains=_fold_domains(profile.domains, fresh, columns, profile.dim, params),
        summary=summary,
        applied_offsets=_offsets(profile.applied_offsets, fresh),
        recent_ids=_recent_ids(profile.recent_ids, fresh, params),
        half_lives=(params.short_half_life_s, params.long_half_life_s),
    )
    if cluster:
        updated = with_clusters(updated, params)
    return FoldOutcome(updated, len(fresh), duplicates, erased)


def with_clusters(profile: UserProfile, params: InterestParams) -> UserProfile:
    """The profile with its clusters rebuilt from its summary (see `fold_events`)."""
    clusters = cluster_summary(
        profile.summary,
        t_ref=profile.state.long.t_ref,
        decay=params.long_decay,
        dim=profile.dim,
        max_clusters=params.max_clusters,
        max_disliked=params.max_disliked,
        background=params.cluster_background,
        margin=params.cluster_margin,
    )
    return replace(profile, clusters=clusters)
