"""The workloads `bench pipeline` runs: two shapes of the same generated events.

- `default`: 200 users with 50 events each, texts from the demo catalogue (about 1,500
  distinct): a user's events arrive many to a batch, as for an active audience.
- `wide`: 6,000 users with one or two events each, from a catalogue of 10,000 titles: nearly
  every event is a user the worker has not seen and a text it has not encoded, the common
  shape in production (a long tail of users and items).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from interest_stream.streams.demo import generate


@dataclass(frozen=True)
class Shape:
    name: str
    users: int
    events_per_user: int
    items_per_topic: int | None = None
    # Keep each user's first event only with this probability of a second one.
    second_event: float = 1.0

    def scaled(self, factor: float) -> Shape:
        """The same shape with fewer users (smoke tests, quick looks)."""
        users = max(2, round(self.users * factor))
        return Shape(
            self.name, users, self.events_per_user, self.items_per_topic, self.second_event
        )

    def events(self, seed: int = 17) -> list[dict[str, Any]]:
        workload = generate(
            users=self.users,
            events_per_user=self.events_per_user,
            items_per_topic=self.items_per_topic,
            seed=seed,
        )
        if self.second_event >= 1.0:
            return workload.events
        keep = random.Random(seed)
        seen: set[str] = set()
        kept = []
        for event in workload.events:
            first = event["user_id"] not in seen
            seen.add(event["user_id"])
            if first or keep.random() < self.second_event:
                kept.append(event)
        return kept


SHAPES = {
    "default": Shape("default", users=200, events_per_user=50),
    "wide": Shape("wide", users=6000, events_per_user=2, items_per_topic=1250, second_event=0.5),
}
