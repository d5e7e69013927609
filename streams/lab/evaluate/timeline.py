"""Replaying one user over time: drift between horizons and cluster shares (for plots)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from interest_stream.schemas.events import Event
from interest_stream.streams.interest.horizons import InterestParams
from interest_stream.streams.interest.profile import UserProfile, fold_events
from interest_stream.streams.lab.evaluate.config import FloatMatrix
from interest_stream.streams.lab.evaluate.data import Corpus
from interest_stream.streams.lab.evaluate.evaluation import Evaluation
from interest_stream.streams.lab.evaluate.profiles import unit_or_zeros, weighted_events


@dataclass(frozen=True)
class Timeline:
    """One user's profile read at regular times: drift and cluster shares.

    `drift` is cos(short(t), long(t)) as published in profile updates; `short_to_final` and
    `long_to_final` compare each horizon at t with the final long-term profile, so a slow
    long-term movement and a jumpy short term can be told apart. NaN where a horizon is
    empty or has decayed away.
    """

    user_id: str
    times: FloatMatrix
    drift: FloatMatrix
    short_to_final: FloatMatrix
    long_to_final: FloatMatrix
    cluster_labels: tuple[str, ...]
    cluster_weights: FloatMatrix
    # Liked events' weight decayed with the long half-life, by domain (the top few, then
    # "other"): what the right-hand panel shows when the profile has a single cluster.
    domain_labels: tuple[str, ...] = ()
    domain_weights: FloatMatrix = field(default_factory=lambda: np.zeros((0, 0)))

    @property
    def cluster_shares(self) -> FloatMatrix:
        total = self.cluster_weights.sum(axis=1, keepdims=True)
        shares: FloatMatrix = np.divide(
            self.cluster_weights,
            total,
            out=np.zeros_like(self.cluster_weights),
            where=total > 0,
        )
        return shares

    @property
    def domain_shares(self) -> FloatMatrix:
        total = self.domain_weights.sum(axis=1, keepdims=True)
        shares: FloatMatrix = np.divide(
            self.domain_weights,
            total,
            out=np.zeros_like(self.domain_weights),
            where=total > 0,
        )
        return shares


TOP_DOMAINS = 6


def domain_mass(
    events: Sequence[Event], weights: Sequence[float], times: FloatMatrix, decay: float
) -> tuple[tuple[str, ...], FloatMatrix]:
    """Decayed weight of liked events per domain at each of `times` (top domains + other)."""
    liked = [(e, w) for e, w in zip(events, weights, strict=True) if w > 0 and e.domain]
    if not liked:
        return (), np.zeros((len(times), 0))
    totals: dict[str, float] = {}
    for event, weight in liked:
        totals[event.domain or ""] = totals.get(event.domain or "", 0.0) + weight
    ranked = sorted(totals, key=lambda d: (-totals[d], d))
    top = ranked[:TOP_DOMAINS]
    labels = tuple(top) + (("other",) if len(ranked) > TOP_DOMAINS else ())
    column = {domain: (top.index(domain) if domain in top else len(top)) for domain in ranked}
    mass = np.zeros((len(times), len(labels)))
    for event, weight in liked:
        age = times - event.ts
        mass[:, column[event.domain or ""]] += np.where(
            age >= 0, weight * np.exp(-decay * np.maximum(age, 0.0)), 0.0
        )
    return labels, mass


def user_timeline(
    events: Sequence[Event], corpus: Corpus, params: InterestParams, points: int = 120
) -> Timeline:
    """Fold a user's events step by step with `fold_events` and read the profile `points`
    times. Clusters are rebuilt at every step, so each step's clusters are matched to the
    final ones by nearest centroid to make their masses comparable over time (an interest
    that left the bounded summary shows up under its nearest surviving cluster)."""
    ordered = sorted(events, key=lambda e: (e.ts, e.event_id))
    weighted = weighted_events(ordered, corpus, params)
    dim = corpus.text_vectors.shape[1]
    profile = UserProfile.new(ordered[0].user_id, corpus.model_id, dim)
    times = np.linspace(ordered[0].ts, ordered[-1].ts, points)
    shorts, longs = np.zeros((points, dim)), np.zeros((points, dim))
    snapshots = []
    done = 0
    for p, t in enumerate(times):
        end = done
        while end < len(weighted) and weighted[end].ts <= t:
            end += 1
        if end > done:
            profile = fold_events(profile, weighted[done:end], params, updated_at=t).profile
            done = end
        state = profile.state
        shorts[p] = unit_or_zeros(state.short.decayed_to(t, params.short_decay).profile(), dim)
        longs[p] = unit_or_zeros(state.long.decayed_to(t, params.long_decay).profile(), dim)
        # Cluster masses are referred to the last event; bring them to time t as well.
        age = 0.0 if state.long.t_ref is None else max(0.0, t - state.long.t_ref)
        factor = math.exp(-params.long_decay * age)
        snapshots.append([(c.centroid, c.weight * factor) for c in profile.liked])

    def cosines(a: FloatMatrix, b: FloatMatrix) -> FloatMatrix:
        empty = ~a.any(axis=1) | ~b.any(axis=1)
        values: FloatMatrix = np.where(empty, np.nan, (a * b).sum(axis=1))
        return values

    domain_labels, domain_weights = domain_mass(
        ordered, [w.weight for w in weighted], times, params.long_decay
    )
    final_long = np.broadcast_to(longs[-1], longs.shape)
    final = profile.liked
    weights = np.zeros((points, len(final)))
    if final:
        anchors = np.stack([c.centroid for c in final])
        for p, clusters in enumerate(snapshots):
            for centroid, weight in clusters:
                weights[p, int(np.argmax(anchors @ centroid))] += weight
    return Timeline(
        user_id=ordered[0].user_id,
        times=times,
        drift=cosines(shorts, longs),
        short_to_final=cosines(shorts, final_long),
        long_to_final=cosines(longs, final_long),
        cluster_labels=tuple(c.label for c in final),
        cluster_weights=weights,
        domain_labels=domain_labels,
        domain_weights=domain_weights,
    )


def timeline_users(evaluation: Evaluation, count: int) -> list[str]:
    """Users worth plotting: the evaluated ones with the most events, then by id."""
    evaluated = {s.user_id for s in evaluation.splits}
    ranked = sorted(evaluated, key=lambda u: (-len(evaluation.by_user[u]), u))
    return ranked[:count]
