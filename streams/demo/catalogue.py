"""The item catalogue of generated workloads: every subject x action of each topic, grown
into numbered editions on demand, as plain titles or as templated catalogue texts
("Title (1994). Genres: Sci-Fi, Adventure, Drama")."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from interest_stream.streams.demo.topics import COMMON_GENRES, GENRES, TOPICS


@dataclass(frozen=True)
class Item:
    item_id: str
    text: str
    topic: str
    domain: str


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


def templated(title: str, topic: str, rng: random.Random) -> str:
    """A catalogue text: the title, a year and the topic's genres, half the time with a
    common genre that other topics share too."""
    genres = list(GENRES.get(topic, ["General"]))
    if rng.random() < 0.5:
        genres.append(rng.choice(COMMON_GENRES))
    return f"{title} ({rng.randint(1970, 2020)}). Genres: {', '.join(genres)}"


def catalogue(
    items_per_topic: int | None = None,
    *,
    topics: Mapping[str, dict[str, Any]] = TOPICS,
    template: bool = False,
) -> list[Item]:
    """The item catalogue: every subject x action of a topic (36 per topic).

    `items_per_topic` grows (or trims) each topic to that many items for catalogue-size
    tests: extra items are numbered editions of the base titles, so they stay on topic.
    `template` turns each title into a templated catalogue text (a fixed seed: the same
    catalogue every time).
    """
    items = []
    years = random.Random("catalogue-template")
    for topic, spec in topics.items():
        slug = topic.replace(" ", "-")
        base = []
        for i, subject in enumerate(spec["subjects"]):
            for j, action in enumerate(spec["actions"]):
                base.append(Item(f"{slug}-{i}{j}", f"{subject} {action}", topic, spec["domain"]))
        chosen: list[Item] = []
        if items_per_topic is None:
            chosen = base
        else:
            for n in range(items_per_topic):
                root = base[n % len(base)]
                round_ = n // len(base)
                if round_ == 0:
                    chosen.append(root)
                    continue
                edition = EDITIONS[(round_ - 1) % len(EDITIONS)]
                volume = (round_ - 1) // len(EDITIONS) + 1
                suffix = edition if volume == 1 else f"{edition}, volume {volume}"
                text = f"{root.text}, {suffix}"
                chosen.append(Item(f"{root.item_id}-{round_}", text, topic, root.domain))
        if template:
            chosen = [
                Item(i.item_id, templated(i.text, topic, years), topic, i.domain) for i in chosen
            ]
        items.extend(chosen)
    return items
