"""Synthetic workloads with planted, drifting interests: the demo, the tests and benchmarks.

A catalogue of item texts across several topics and domains is generated from phrase
lists; each user is given interests that change halfway through the period (one interest
is replaced by another). Events are clicks on items of current interests, searches for
them, and reviews (rated or not, mostly praise for interests and some complaints about
other topics). The ground truth is returned beside the events, so that what the pipeline
recovers can be checked. Deterministic for a given seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

TOPICS: dict[str, dict[str, Any]] = {
    "space films": {
        "domain": "movies",
        "subjects": [
            "Astronauts",
            "A starship crew",
            "A lone pilot",
            "The mission commander",
            "Alien explorers",
            "A rookie cosmonaut",
        ],
        "actions": [
            "stranded on Mars",
            "racing through a wormhole",
            "fighting to survive in orbit",
            "landing on a frozen moon",
            "searching for a habitable planet",
            "escaping a dying space station",
        ],
        "queries": [
            "space movies",
            "sci-fi films about astronauts",
            "best space exploration film",
            "movies set on mars",
            "interstellar travel movie",
        ],
    },
    "cooking": {
        "domain": "recipes",
        "subjects": [
            "Quick weeknight",
            "Slow-cooked",
            "Classic Italian",
            "Spicy Thai",
            "Healthy vegetarian",
            "One-pot",
        ],
        "actions": [
            "pasta with garlic and basil",
            "chicken curry with coconut milk",
            "beef stew with root vegetables",
            "lentil soup with cumin",
            "risotto with mushrooms",
            "stir-fried noodles with tofu",
        ],
        "queries": [
            "easy dinner recipes",
            "how to cook curry",
            "pasta recipe",
            "vegetarian soup recipe",
            "what to cook tonight",
        ],
    },
    "jazz": {
        "domain": "music",
        "subjects": ["Late-night", "Smoky club", "Bebop", "Cool", "Modal", "Live"],
        "actions": [
            "saxophone improvisation album",
            "jazz piano trio record",
            "trumpet ballads collection",
            "big band swing session",
            "double bass and drums jam",
            "jazz standards with a singer",
        ],
        "queries": [
            "jazz albums",
            "best saxophone records",
            "jazz piano music",
            "swing music playlist",
            "bebop classics",
        ],
    },
    "hiking": {
        "domain": "outdoors",
        "subjects": ["Alpine", "Coastal", "Desert", "Forest", "Volcanic", "Glacier"],
        "actions": [
            "trail guide for a three-day trek",
            "hiking boots for rocky paths",
            "backpacking tent for mountain camping",
            "route map of ridge walks",
            "water filter for long hikes",
            "trekking poles for steep descents",
        ],
        "queries": [
            "hiking trails",
            "best hiking boots",
            "mountain trekking gear",
            "backpacking tent",
            "day hikes near me",
        ],
    },
    "programming": {
        "domain": "books",
        "subjects": [
            "A practical guide to",
            "Mastering",
            "Learning",
            "The art of",
            "Advanced",
            "Beginner's handbook of",
        ],
        "actions": [
            "Python programming",
            "distributed systems design",
            "Rust for systems code",
            "database internals",
            "functional programming in Haskell",
            "compilers and interpreters",
        ],
        "queries": [
            "programming books",
            "learn python",
            "software engineering book",
            "how databases work",
            "best book on compilers",
        ],
    },
    "football": {
        "domain": "sports",
        "subjects": [
            "Champions League",
            "Premier League",
            "World Cup",
            "Derby day",
            "Cup final",
            "Transfer window",
        ],
        "actions": [
            "match highlights and goals",
            "tactical analysis of the striker",
            "penalty shootout drama",
            "goalkeeper saves compilation",
            "coach press conference",
            "midfield passing masterclass",
        ],
        "queries": [
            "football highlights",
            "soccer match results",
            "best goals this season",
            "premier league news",
            "world cup goals",
        ],
    },
    "gardening": {
        "domain": "home",
        "subjects": ["Organic", "Balcony", "Cottage", "Vegetable", "Herb", "Rose"],
        "actions": [
            "garden planting calendar",
            "compost and soil guide",
            "seeds for tomatoes and peppers",
            "pruning shears for shrubs",
            "raised bed kit for vegetables",
            "watering can and hose set",
        ],
        "queries": [
            "gardening tips",
            "how to grow tomatoes",
            "best compost",
            "vegetable garden ideas",
            "pruning roses",
        ],
    },
    "mystery novels": {
        "domain": "books",
        "subjects": [
            "A detective",
            "An amateur sleuth",
            "A retired inspector",
            "Two rival spies",
            "A young journalist",
            "The village doctor",
        ],
        "actions": [
            "solves a murder on a night train",
            "uncovers a poisoning at the manor",
            "tracks a jewel thief through London",
            "investigates a locked-room mystery",
            "hunts a serial killer in the fog",
            "decodes a cipher left by the victim",
        ],
        "queries": [
            "mystery novels",
            "detective books",
            "best crime thriller",
            "whodunit books",
            "murder mystery series",
        ],
    },
}

PRAISE = [
    "Loved it: {t}. Absolutely wonderful.",
    "{t} was excellent, highly recommended.",
    "Really enjoyed {t}, great quality.",
]
COMPLAINTS = [
    "{t} was terrible, a waste of money.",
    "Hated {t}, very disappointing.",
    "{t}: boring and poorly made, do not recommend.",
]


@dataclass(frozen=True)
class Item:
    item_id: str
    text: str
    topic: str
    domain: str


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


EDITIONS = [
    "new edition",
    "collector's edition",
    "part two",
    "revised",
    "extended version",
    "the sequel",
    "special feature",
    "pocket guide",
    "illustrated",
    "anniversary release",
]


def catalogue(items_per_topic: int | None = None) -> list[Item]:
    """The item catalogue: every subject x action of a topic (36 per topic).

    `items_per_topic` grows (or trims) each topic to that many items for catalogue-size
    tests: extra items are numbered editions of the base titles, so they stay on topic.
    """
    items = []
    for topic, spec in TOPICS.items():
        slug = topic.replace(" ", "-")
        base = []
        for i, subject in enumerate(spec["subjects"]):
            for j, action in enumerate(spec["actions"]):
                base.append(Item(f"{slug}-{i}{j}", f"{subject} {action}", topic, spec["domain"]))
        if items_per_topic is None:
            items.extend(base)
            continue
        for n in range(items_per_topic):
            root = base[n % len(base)]
            round_ = n // len(base)
            if round_ == 0:
                items.append(root)
                continue
            edition = EDITIONS[(round_ - 1) % len(EDITIONS)]
            volume = (round_ - 1) // len(EDITIONS) + 1
            suffix = edition if volume == 1 else f"{edition}, volume {volume}"
            items.append(
                Item(f"{root.item_id}-{round_}", f"{root.text}, {suffix}", topic, root.domain)
            )
    return items


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
) -> Workload:
    """Events (dicts in the event contract) in time order, plus the planted truth.

    The defaults give the demo workload, byte for byte. Evaluation knobs: `items_per_topic`
    (catalogue size, see `catalogue`), `popularity_skew` (Zipf exponent of item choice
    within a topic; 0 = uniform, so item popularity carries no signal) and
    `interest_changes` (how many times one of the user's two interests is replaced, at
    evenly spaced times; 1 = once, at the midpoint).
    """
    if interest_changes < 1:
        raise ValueError("interest_changes must be >= 1")
    if interest_changes + 2 > len(TOPICS):
        raise ValueError(f"at most {len(TOPICS) - 2} interest changes with {len(TOPICS)} topics")
    rng = random.Random(seed)
    items = catalogue(items_per_topic)
    by_topic: dict[str, list[Item]] = {}
    for item in items:
        by_topic.setdefault(item.topic, []).append(item)
    weights = _popularity_weights(by_topic, popularity_skew, seed) if popularity_skew else {}

    def pick(topic: str) -> Item:
        if not weights:
            return rng.choice(by_topic[topic])
        return rng.choices(by_topic[topic], cum_weights=weights[topic])[0]

    topics = sorted(TOPICS)
    start = end - days * 86400.0
    middle = (start + end) / 2
    timed: list[tuple[float, dict[str, Any]]] = []
    planted: list[PlantedUser] = []
    for u in range(users):
        user_id = f"user-{u:05d}"
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
            if interest_changes == 1:
                interests = truth.early if ts < middle else truth.late
            else:
                phase = int((ts - start) / (end - start) * (interest_changes + 1))
                interests = phases[min(phase, interest_changes)]
            topic = rng.choice(interests)
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
                event.update(type="query", text=rng.choice(TOPICS[topic]["queries"]))
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
        copies = rng.sample(ordered, int(len(ordered) * duplicates))
        for copy in copies:
            ordered.insert(rng.randrange(len(ordered)), dict(copy))
    topic_of_text = {item.text: item.topic for item in items}
    return Workload(ordered, items, planted, topic_of_text, start, end)


def topic_of(text: str, workload: Workload) -> str | None:
    """Which planted topic a profile label came from (item title, review of it, or query)."""
    if text in workload.topic_of_text:
        return workload.topic_of_text[text]
    for title, topic in workload.topic_of_text.items():
        if title in text:
            return topic
    for topic, spec in TOPICS.items():
        if text in spec["queries"]:
            return topic
    return None


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
        topics = [topic_of(c.label, workload) for c in profile.clusters]
        top1 += bool(topics) and topics[0] in truth.all_interests
        top2 += len(topics) >= 2 and all(t in truth.all_interests for t in topics[:2])
        short = profile.state.short.profile()
        if short is not None:
            current += names[int(np.argmax(matrix @ short))] in truth.late
    n = max(len(users), 1)
    return Recovery(len(users), round(top1 / n, 3), round(top2 / n, 3), round(current / n, 3))
