"""A user's whole profile and the pure function that folds a batch of events into it.

`fold_events(profile, events, params)` is the only way events change a profile, in the
embedded `run`, in the Kafka worker and in tests alike. It skips events already applied
(by source high-water offset and by recent event id), folds the rest into the user's and
the per-domain horizons, refreshes the cluster summary and rebuilds the clusters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from interest_stream.streams.model.clusters import (
    Cluster,
    SummaryEntry,
    cluster_summary,
    merge_summary,
)
from interest_stream.streams.model.horizons import InterestParams, InterestState


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


@dataclass(frozen=True)
class UserProfile:
    """Everything stored for one user; `version` fences concurrent writers."""

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
    recent_event_ids: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def new(cls, user_id: str, model_id: str, dim: int) -> UserProfile:
        return cls(user_id, model_id, dim, interests=InterestState.empty(dim))

    @property
    def state(self) -> InterestState:
        return self.interests if self.interests is not None else InterestState.empty(self.dim)

    def drift(self) -> float | None:
        return self.state.drift()


class Delivered(Protocol):
    """Anything that says which event it is and where it was delivered from."""

    @property
    def event_id(self) -> str: ...
    @property
    def source(self) -> str | None: ...
    @property
    def offset(self) -> int | None: ...


D = TypeVar("D", bound=Delivered)


@dataclass(frozen=True)
class FoldOutcome:
    profile: UserProfile
    applied: int
    duplicates: int


def select_new(profile: UserProfile | None, events: Sequence[D]) -> tuple[list[D], int]:
    """Events not applied before: unseen ids, offsets above their source's high-water mark.

    Within `events`, the first delivery of an event id wins.
    """
    offsets = profile.applied_offsets if profile is not None else {}
    recent = profile.recent_event_ids if profile is not None else {}
    fresh: list[D] = []
    seen: set[str] = set()
    for event in events:
        if _replayed(offsets, event) or event.event_id in seen or event.event_id in recent:
            continue
        seen.add(event.event_id)
        fresh.append(event)
    return fresh, len(events) - len(fresh)


def redelivered(profile: UserProfile | None, events: Sequence[Delivered]) -> bool:
    """Whether any event comes again from at or below its source's applied high-water
    offset: a redelivery after a crash or rebalance, not a duplicate id in the stream."""
    return profile is not None and any(_replayed(profile.applied_offsets, e) for e in events)


def _replayed(offsets: Mapping[str, int], event: Delivered) -> bool:
    """Whether `event` comes from at or below its source's applied high-water offset."""
    high_water = offsets.get(event.source or "")
    return event.offset is not None and high_water is not None and event.offset <= high_water


def _fold_state(
    state: InterestState, events: Sequence[WeightedEvent], params: InterestParams
) -> InterestState:
    vectors = np.stack([e.vector for e in events])
    times = np.array([e.ts for e in events], dtype=np.float64)
    weights = np.array([e.weight for e in events], dtype=np.float64)
    return state.fold(vectors, times, weights, params)


def _recent_ids(
    current: Mapping[str, float], events: Sequence[WeightedEvent], limit: int
) -> dict[str, float]:
    merged = dict(current)
    merged.update((e.event_id, e.ts) for e in events)
    if len(merged) <= limit:
        return merged
    # Keep the newest ids: a redelivery is far likelier for recent events than for old ones.
    kept = sorted(merged.items(), key=lambda item: (-item[1], item[0]))[:limit]
    return dict(kept)


def _offsets(current: Mapping[str, int], events: Sequence[WeightedEvent]) -> dict[str, int]:
    offsets = dict(current)
    for event in events:
        if event.source is not None and event.offset is not None:
            offsets[event.source] = max(offsets.get(event.source, -1), event.offset)
    return offsets


def fold_events(
    profile: UserProfile,
    events: Sequence[WeightedEvent],
    params: InterestParams,
    *,
    updated_at: float,
) -> FoldOutcome:
    """Apply not-yet-seen events to a profile; returns the new profile (version + 1 if changed)."""
    fresh, duplicates = select_new(profile, events)
    if not fresh:
        return FoldOutcome(profile, 0, duplicates)
    interests = _fold_state(profile.state, fresh, params)
    domains = dict(profile.domains)
    for domain in sorted({e.domain for e in fresh if e.domain}):
        in_domain = [e for e in fresh if e.domain == domain]
        current = domains.get(domain, InterestState.empty(profile.dim))
        domains[domain] = _fold_state(current, in_domain, params)
    # Summary vectors are kept in float16 from the start: half the stored row (every LWT
    # carries it twice), and every path (batch sizes, stores) sees the very same values.
    new_entries = [
        SummaryEntry(e.event_id, e.ts, e.weight, e.text, np.asarray(e.vector, dtype=np.float16))
        for e in fresh
    ]
    summary = merge_summary(profile.summary, new_entries, params.summary_size, params.long_decay)
    clusters = cluster_summary(
        summary,
        t_ref=interests.long.t_ref,
        decay=params.long_decay,
        max_clusters=params.max_clusters,
        min_similarity=params.cluster_similarity,
    )
    updated = replace(
        profile,
        version=profile.version + 1,
        updated_at=updated_at,
        event_count=profile.event_count + len(fresh),
        interests=interests,
        domains=domains,
        summary=summary,
        clusters=clusters,
        applied_offsets=_offsets(profile.applied_offsets, fresh),
        recent_event_ids=_recent_ids(profile.recent_event_ids, fresh, params.recent_ids),
    )
    return FoldOutcome(updated, len(fresh), duplicates)
