"""Multi-interest clusters (PinnerSage-like), built so that arrival order cannot change them.

Online nearest-centroid assignment depends on the order events arrive in. Instead each user
keeps a bounded summary: the N events with the highest decayed weight, ranked by
log|w| + λ·t (a key that does not depend on the reference time; ties by event id). At write
time the summary is clustered deterministically (average-linkage agglomeration on cosine);
each cluster carries its decayed mass and its medoid text as a readable label.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from interest_stream.streams.model.horizons import FloatVector


@dataclass(frozen=True, slots=True)
class SummaryEntry:
    """One event kept in the bounded summary a user's clusters are built from."""

    event_id: str
    ts: float
    weight: float
    text: str
    vector: npt.NDArray[np.float16]

    def rank(self, decay: float) -> float:
        return math.log(abs(self.weight)) + decay * self.ts


@dataclass(frozen=True, slots=True)
class Cluster:
    """One interest: unit centroid, decayed mass at the profile's reference time, medoid label."""

    centroid: npt.NDArray[np.float32]
    weight: float
    label: str
    size: int


def merge_summary(
    current: Iterable[SummaryEntry],
    new: Iterable[SummaryEntry],
    size: int,
    decay: float,
) -> tuple[SummaryEntry, ...]:
    """The `size` highest-ranked entries of both, in a canonical order."""
    by_id: dict[str, SummaryEntry] = {}
    for entry in (*current, *new):
        if entry.weight != 0.0:
            by_id.setdefault(entry.event_id, entry)
    ranked = sorted(by_id.values(), key=lambda e: (-e.rank(decay), e.event_id))
    return tuple(ranked[:size])


def _cosine_matrix(vectors: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = vectors / np.where(norms > 0, norms, 1.0)
    return unit @ unit.T


def cluster_summary(
    summary: Sequence[SummaryEntry],
    *,
    t_ref: float | None,
    decay: float,
    max_clusters: int,
    min_similarity: float,
) -> tuple[Cluster, ...]:
    """Cluster the positively weighted summary entries; heaviest cluster first."""
    entries = sorted(
        (e for e in summary if e.weight > 0), key=lambda e: (-e.rank(decay), e.event_id)
    )
    if not entries or t_ref is None:
        return ()
    vectors = np.stack([e.vector for e in entries]).astype(np.float64)
    mass = np.array([e.weight * math.exp(-decay * max(0.0, t_ref - e.ts)) for e in entries])
    similarity = _cosine_matrix(vectors)
    groups = _average_linkage(similarity, max_clusters, min_similarity)
    clusters = [_summarize(group, entries, vectors, mass, similarity) for group in groups]
    clusters.sort(key=lambda c: (-c.weight, c.label))
    return tuple(clusters[:max_clusters])


def _average_linkage(
    similarity: npt.NDArray[np.float64], max_clusters: int, min_similarity: float
) -> list[list[int]]:
    """Merge the most similar pair of groups (average linkage) while it is at least
    `min_similarity` similar or there are more than `max_clusters` groups.

    A group is named by its lowest member index and merges keep the lower name, so the
    first maximum in row-major order breaks ties the same way on every run.
    """
    n = len(similarity)
    link = similarity.copy()  # link[a, b] = sum of pairwise similarities between groups
    sizes = np.ones(n)
    members: list[list[int]] = [[i] for i in range(n)]
    valid = np.triu(np.ones((n, n), dtype=bool), 1)
    remaining = n
    while remaining > 1:
        score = np.where(valid, link / np.outer(sizes, sizes), -np.inf)
        a, b = divmod(int(np.argmax(score)), n)
        if score[a, b] < min_similarity and remaining <= max_clusters:
            break
        link[a, :] += link[b, :]
        link[:, a] += link[:, b]
        sizes[a] += sizes[b]
        valid[b, :] = False
        valid[:, b] = False
        members[a] += members[b]
        members[b] = []
        remaining -= 1
    return [group for group in members if group]


def _summarize(
    group: list[int],
    entries: Sequence[SummaryEntry],
    vectors: npt.NDArray[np.float64],
    mass: npt.NDArray[np.float64],
    similarity: npt.NDArray[np.float64],
) -> Cluster:
    ordered = sorted(group)
    members = np.array(ordered)
    centroid = mass[members] @ vectors[members]
    norm = float(np.linalg.norm(centroid))
    centroid = centroid / norm if norm > 0 else centroid
    centrality = similarity[np.ix_(members, members)] @ mass[members]
    # The medoid: the member most similar (by decayed mass) to the others; ties by event id.
    best = min(range(len(ordered)), key=lambda k: (-centrality[k], entries[ordered[k]].event_id))
    medoid = ordered[best]
    return Cluster(
        centroid.astype(np.float32), float(mass[members].sum()), entries[medoid].text, len(members)
    )


def contextual_profile(
    clusters: Sequence[Cluster], context: npt.NDArray[np.floating], temperature: float = 0.1
) -> FloatVector | None:
    """Σ softmax(q·c_k/τ)·c_k: the user's interests as seen from a context vector q."""
    if not clusters:
        return None
    centroids = np.stack([c.centroid for c in clusters]).astype(np.float64)
    logits = centroids @ np.asarray(context, dtype=np.float64) / temperature
    attention = np.exp(logits - logits.max())
    attention /= attention.sum()
    profile: FloatVector = attention @ centroids
    return profile
