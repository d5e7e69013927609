"""How well profiles recovered the planted interests of a generated workload."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from interest_stream.streams.demo.generate import Workload
from interest_stream.streams.demo.topics import EXTRA_TOPICS, TOPICS


def topic_of(text: str, workload: Workload) -> str | None:
    """Which planted topic a profile label came from (item title, review of it, or query).
    Labels are excerpts: a label cut short ("... a dying space…") still names its title."""
    if text in workload.topic_of_text:
        return workload.topic_of_text[text]
    cut = text.endswith("…")
    text = text.removesuffix("…")
    for title, topic in workload.topic_of_text.items():
        if title in text or (cut and _ends_with_start_of(text, title)):
            return topic
    for topic, spec in {**TOPICS, **EXTRA_TOPICS}.items():
        if text in spec["queries"]:
            return topic
    return None


def _ends_with_start_of(text: str, title: str, shortest: int = 12) -> bool:
    return any(text.endswith(title[:k]) for k in range(len(title), shortest - 1, -1))


@dataclass(frozen=True)
class Recovery:
    """How well profiles recovered the planted interests (shares of users, rounded)."""

    users: int
    top_cluster_is_planted: float
    top2_clusters_are_planted: float
    short_term_matches_current_interest: float


def recovery(
    profiles: dict[str, Any], workload: Workload, topic_vectors: dict[str, Any]
) -> Recovery:
    """Share of users whose top clusters are planted interests, and whose short-term
    profile is nearest to one of their current (late) interests.

    `profiles` maps user id to `UserProfile`; `topic_vectors` maps topic to a unit vector
    (mean of its item encodings) in the profiles' vector space.
    """
    import numpy as np

    top1 = top2 = current = 0
    users = [u for u in workload.users if u.user_id in profiles]
    names = sorted(topic_vectors)
    matrix = np.stack([topic_vectors[n] for n in names])
    for truth in users:
        profile = profiles[truth.user_id]
        topics = [topic_of(c.label, workload) for c in profile.liked]
        top1 += bool(topics) and topics[0] in truth.all_interests
        top2 += len(topics) >= 2 and all(t in truth.all_interests for t in topics[:2])
        short = profile.state.short.profile()
        if short is not None:
            current += names[int(np.argmax(matrix @ short))] in truth.late
    n = max(len(users), 1)
    return Recovery(len(users), round(top1 / n, 3), round(top2 / n, 3), round(current / n, 3))
