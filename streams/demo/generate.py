"""Synthetic event logs with planted interests: the demo, tests and benchmarks.

Each user is given interests that change halfway through the period (one interest is
replaced by another), or, for cluster checks, a stable set of one to several interests.
Events are clicks on items of current interests, searches for them, and reviews (rated or
not, mostly praise for interests and some complaints about other topics). The ground truth
is returned beside the events, so that what the pipeline recovers can be checked.
Deterministic for a given seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from interest_stream.streams.demo.catalogue import Item, catalogue
from interest_stream.streams.demo.topics import COMPLAINTS, EXTRA_TOPICS, PRAISE, TOPICS


@dataclass
class PlantedUser:
    """Ground truth for one user: interests before and after the midpoint."""

    user_id: str
    early: list[str]
    late: list[str]
    # Interests of every phase when they change more than once (`interest_changes` > 1).
    phases: list[list[str]] = field(default_factory=list)

    @property
    def all_interests(self) -> set[str]:
        return set(self.early) | set(self.late) | {t for phase in self.phases for t in phase}


@dataclass
class Workload:
    events: list[dict[str, Any]]
    items: list[Item]
    users: list[PlantedUser]
    topic_of_text: dict[str, str] = field(default_factory=dict)
    start: float = 0.0
    end: float = 0.0


def _popularity_weights(
    by_topic: dict[str, list[Item]], skew: float, seed: int
) -> dict[str, list[float]]:
    """Cumulative Zipf weights (rank^-skew) per topic over a seeded shuffle of its items,
    so that the popular items are not simply the first titles of the catalogue."""
    shuffler = random.Random(f"popularity-{seed}")
    cumulative: dict[str, list[float]] = {}
    for topic, members in by_topic.items():
        ranks = list(range(1, len(members) + 1))
        shuffler.shuffle(ranks)
        total = 0.0
        cumulative[topic] = []
        for rank in ranks:
            total += rank**-skew
            cumulative[topic].append(total)
    return cumulative


# How many events later, at most, a duplicate follows its original.
RETRY_SPREAD = 40

# Far enough in the past that generated events never trip the future-skew check.
DEFAULT_END = datetime(2026, 10, 1, tzinfo=UTC).timestamp()


def _format_ts(ts: float, rng: random.Random) -> str | int:
    if rng.random() < 0.5:
        return int(ts * 1000)
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds")


def generate(
    *,
    users: int = 50,
    days: int = 28,
    events_per_user: int = 60,
    seed: int = 7,
    duplicates: float = 0.0,
    end: float = DEFAULT_END,
    items_per_topic: int | None = None,
    popularity_skew: float = 0.0,
    interest_changes: int = 1,
    interests: tuple[int, int] | None = None,
    template: bool = False,
) -> Workload:
    """Events (dicts in the event contract) in time order, plus the planted truth.

    The defaults give the demo workload, byte for byte. Evaluation knobs: `items_per_topic`
    (catalogue size, see `catalogue`), `popularity_skew` (Zipf exponent of item choice
    within a topic; 0 = uniform, so item popularity carries no signal) and
    `interest_changes` (how many times one of the user's two interests is replaced, at
    evenly spaced times; 1 = once, at the midpoint). Cluster checks: `interests` (lo, hi)
    plants between lo and hi stable interests per user instead (from twelve topics), and
    `template` makes the item texts templated catalogue entries with genre lists.
    """
    if interest_changes < 1:
        raise ValueError("interest_changes must be >= 1")
    if interest_changes + 2 > len(TOPICS):
        raise ValueError(f"at most {len(TOPICS) - 2} interest changes with {len(TOPICS)} topics")
    known = {**TOPICS, **EXTRA_TOPICS} if interests is not None else TOPICS
    if interests is not None and not 1 <= interests[0] <= interests[1] <= len(known) - 2:
        raise ValueError(f"planted interests must be within 1..{len(known) - 2}, got {interests}")
    rng = random.Random(seed)
    items = catalogue(items_per_topic, topics=known, template=template)
    by_topic: dict[str, list[Item]] = {}
    for item in items:
        by_topic.setdefault(item.topic, []).append(item)
    weights = _popularity_weights(by_topic, popularity_skew, seed) if popularity_skew else {}

    def pick(topic: str) -> Item:
        if not weights:
            return rng.choice(by_topic[topic])
        return rng.choices(by_topic[topic], cum_weights=weights[topic])[0]

    topics = sorted(known)
    start = end - days * 86400.0
    middle = (start + end) / 2
    timed: list[tuple[float, dict[str, Any]]] = []
    planted: list[PlantedUser] = []
    for u in range(users):
        user_id = f"user-{u:05d}"
        if interests is not None:
            stable = rng.sample(topics, rng.randint(*interests))
            truth = PlantedUser(user_id, early=stable, late=stable)
            phases = [stable]
        else:
            chosen = rng.sample(topics, interest_changes + 2)
            phases = [[chosen[p], chosen[p + 1]] for p in range(interest_changes + 1)]
            truth = PlantedUser(
                user_id,
                early=phases[0],
                late=phases[-1],
                phases=phases if interest_changes > 1 else [],
            )
        planted.append(truth)
        for n in range(events_per_user):
            ts = rng.uniform(start, end)
            if interests is not None:
                current = truth.early
            elif interest_changes == 1:
                current = truth.early if ts < middle else truth.late
            else:
                phase = int((ts - start) / (end - start) * (interest_changes + 1))
                current = phases[min(phase, interest_changes)]
            topic = rng.choice(current)
            item = pick(topic)
            event: dict[str, Any] = {
                "event_id": f"{user_id}-e{n:05d}",
                "user_id": user_id,
                "ts": _format_ts(ts, rng),
                "domain": item.domain,
            }
            roll = rng.random()
            if roll < 0.65:
                event.update(type="click", text=item.text, item_id=item.item_id)
            elif roll < 0.8:
                event.update(type="query", text=rng.choice(known[topic]["queries"]))
                del event["domain"]
            elif roll < 0.92:
                event.update(
                    type="review",
                    item_id=item.item_id,
                    rating=rng.choice([4, 5]),
                    text=rng.choice(PRAISE).format(t=item.text),
                )
                if rng.random() < 0.4:
                    del event["rating"]
            else:
                other = rng.choice([t for t in topics if t not in truth.all_interests])
                disliked = pick(other)
                event.update(
                    type="review",
                    item_id=disliked.item_id,
                    domain=disliked.domain,
                    rating=rng.choice([1, 2]),
                    text=rng.choice(COMPLAINTS).format(t=disliked.text),
                )
            timed.append((ts, event))
    timed.sort(key=lambda pair: (pair[0], pair[1]["event_id"]))
    ordered = [event for _, event in timed]
    if duplicates > 0:
        # A duplicate is a producer's retry: it follows its original closely, as the event
        # contract assumes (dedup by id covers each user's recent events; interest/profile.py).
        for index in sorted(rng.sample(range(len(ordered)), int(len(ordered) * duplicates)))[::-1]:
            ordered.insert(index + 1 + rng.randrange(RETRY_SPREAD), dict(ordered[index]))
    topic_of_text = {item.text: item.topic for item in items}
    return Workload(ordered, items, planted, topic_of_text, start, end)
