"""Multi-interest clusters (PinnerSage-like) of liked and of disliked events.

Clusters are a pure function of the summary (interest/summary.py), so arrival order cannot
change them. Liked (positively weighted) and disliked entries are clustered apart, by
average linkage on cosine: two groups merge while their average cosine stays `margin`
(in units of the remaining cosine range) above the catalogue's background, the cosine
of unrelated texts, and while there are more groups than allowed.

Why a background and not a criterion on each user's similarities alone: on templated
catalogue texts ("Title (1995). Genres: ...") every pair shares the template, which adds
about the same cosine to all of them, while one interest of a plain catalogue has
sub-groups (near-duplicate titles) as tight as separate interests are apart. A scale-free
per-user statistic (silhouette, gap, linkage ratios) cannot tell a one-interest user of a
templated catalogue from a several-interest user of a plain one; measured on generated
users with 1-6 planted interests it reached at most 57-85% on one kind of text and far less
on the other (docs/model.md, "How clusters are chosen"). Measured against the background, the
dendrogram's cut separates interests on both. The background is a property of the
catalogue and the encoder, estimated from the texts themselves (`background_cosine`).

Each cluster carries its decayed mass (negative for a disliked one), its medoid's label,
and its centroid: the mass-weighted mean of its members' vectors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from interest_stream.streams.interest.horizons import FloatVector
from interest_stream.streams.interest.summary import FloatMatrix, SummaryEntry, summary_vectors


@dataclass(frozen=True, slots=True)
class Cluster:
    """One interest (or dislike): unit centroid, signed decayed mass at the profile's
    reference time, medoid label, and its members as indexes into the summary."""

    centroid: npt.NDArray[np.float32]
    weight: float
    label: str
    size: int
    members: tuple[int, ...] = ()
    medoid: int = 0

    @property
    def disliked(self) -> bool:
        return self.weight < 0


def background_cosine(vectors: npt.ArrayLike) -> float:
    """The mean cosine between distinct rows of unit `vectors`: how similar two unrelated
    texts of this catalogue are (templates and the encoder's anisotropy included)."""
    rows = np.asarray(vectors, dtype=np.float64)
    n = len(rows)
    if n < 2:
        raise ValueError("the background needs at least two texts")
    total = rows.sum(axis=0)
    # Σ_{i≠j} x_i·x_j = |Σ x_i|² − Σ |x_i|², for unit rows the last term is n.
    return float((total @ total - n) / (n * (n - 1)))


def cluster_summary(
    summary: Sequence[SummaryEntry],
    *,
    t_ref: float | None,
    decay: float,
    dim: int,
    max_clusters: int,
    max_disliked: int,
    background: float,
    margin: float,
) -> tuple[Cluster, ...]:
    """Liked clusters heaviest first, then disliked ones most disliked first."""
    if not summary or t_ref is None:
        return ()
    vectors = summary_vectors(summary, dim)
    threshold = background + margin * (1.0 - background)
    groups: list[list[int]] = []
    for sign, limit in ((1.0, max_clusters), (-1.0, max_disliked)):
        members = [i for i, e in enumerate(summary) if e.weight * sign > 0]
        if not members or limit == 0:
            continue
        similarity = vectors[members] @ vectors[members].T
        for group in _average_linkage(similarity, limit, threshold):
            groups.append([members[i] for i in group])
    return clusters_of(summary, groups, t_ref=t_ref, decay=decay, dim=dim, vectors=vectors)


def clusters_of(
    summary: Sequence[SummaryEntry],
    groups: Sequence[Sequence[int]],
    *,
    t_ref: float,
    decay: float,
    dim: int,
    vectors: FloatMatrix | None = None,
) -> tuple[Cluster, ...]:
    """The clusters of given member groups (indexes into `summary`), in canonical order.

    The profile codec stores only the groups; decoding calls this to rebuild the same
    centroids, weights and labels that folding computed.
    """
    if vectors is None:
        vectors = summary_vectors(summary, dim)
    mass = np.array([e.mass(t_ref, decay) for e in summary])
    clusters = [_summarize(sorted(g), summary, vectors, mass) for g in groups if g]
    clusters.sort(key=lambda c: (c.disliked, -abs(c.weight), c.label, c.medoid))
    return tuple(clusters)


def _average_linkage(similarity: FloatMatrix, max_groups: int, threshold: float) -> list[list[int]]:
    """Merge the most similar pair of groups (average linkage) while it is at least
    `threshold` similar or there are more than `max_groups` groups.

    A group is named by its lowest member index and merges keep the lower name, so the
    first maximum in row-major order breaks ties the same way on every run.
    """
    n = len(similarity)
    if n < 2:
        return [[0]] if n else []
    link = similarity.copy()  # link[a, b] = sum of pairwise similarities between groups
    sizes = np.ones(n)
    alive = np.ones(n, dtype=bool)
    members: list[list[int]] = [[i] for i in range(n)]
    # score[a, b] = link[a, b] / (sizes[a]·sizes[b]) for live groups a < b, -inf elsewhere.
    # A merge changes only row and column `a` and retires `b`, so only the live entries of
    # those are recomputed, in place (the values, and so the ties, of a full rebuild).
    score = np.where(_upper_triangle(n), link, -np.inf)
    remaining = n
    while remaining > 1:
        a, b = divmod(int(score.argmax()), n)
        if score[a, b] < threshold and remaining <= max_groups:
            break
        link[a] += link[b]
        link[:, a] += link[:, b]
        sizes[a] += sizes[b]
        alive[b] = False
        members[a] += members[b]
        members[b] = []
        remaining -= 1
        score[b] = -np.inf
        score[:, b] = -np.inf
        scale = sizes[a] * sizes
        np.divide(link[a, a + 1 :], scale[a + 1 :], out=score[a, a + 1 :], where=alive[a + 1 :])
        np.divide(link[:a, a], scale[:a], out=score[:a, a], where=alive[:a])
    return [group for group in members if group]


@lru_cache(maxsize=64)
def _upper_triangle(n: int) -> npt.NDArray[np.bool_]:
    """The pairs a < b of an n×n matrix (shared and read-only: one per summary size)."""
    mask = np.triu(np.ones((n, n), dtype=bool), 1)
    mask.flags.writeable = False
    return mask


def _summarize(
    members: list[int],
    summary: Sequence[SummaryEntry],
    vectors: FloatMatrix,
    mass: FloatVector,
) -> Cluster:
    index = np.array(members)
    rows = vectors[index]
    strength = np.abs(mass[index])
    centroid = strength @ rows
    norm = float(np.linalg.norm(centroid))
    unit = centroid / norm if norm > 0 else centroid
    medoid = members[0]
    if len(members) > 1:
        # The medoid: the member most similar (by decayed mass) to the others; ties by key.
        centrality = ((rows @ rows.T) @ strength).tolist()
        best = min(range(len(members)), key=lambda k: (-centrality[k], summary[members[k]].key))
        medoid = members[best]
    return Cluster(
        centroid=unit.astype(np.float32),
        weight=float(mass[index].sum()),
        label=summary[medoid].label,
        size=len(members),
        members=tuple(members),
        medoid=medoid,
    )


def contextual_profile(
    clusters: Sequence[Cluster], context: npt.NDArray[np.floating], temperature: float = 0.1
) -> FloatVector | None:
    """Σ softmax(q·c_k/τ)·c_k over the liked clusters: the user's interests as seen from
    a context vector q."""
    liked = [c for c in clusters if not c.disliked]
    if not liked:
        return None
    centroids = np.stack([c.centroid for c in liked]).astype(np.float64)
    logits = centroids @ np.asarray(context, dtype=np.float64) / temperature
    attention = np.exp(logits - logits.max())
    attention /= attention.sum()
    profile: FloatVector = attention @ centroids
    return profile
