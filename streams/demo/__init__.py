"""Synthetic workloads with planted interests, for the demo, `generate`, tests and the lab:
`topics` (phrase lists), `catalogue` (item texts, plain or templated), `generate` (events and
their ground truth) and `recovery` (did the profiles find the planted interests)."""

from interest_stream.streams.demo.catalogue import Item, catalogue
from interest_stream.streams.demo.generate import PlantedUser, Workload, generate
from interest_stream.streams.demo.recovery import Recovery, recovery, topic_of
from interest_stream.streams.demo.topics import EXTRA_TOPICS, TOPICS

__all__ = [
    "EXTRA_TOPICS",
    "TOPICS",
    "Item",
    "PlantedUser",
    "Recovery",
    "Workload",
    "catalogue",
    "generate",
    "recovery",
    "topic_of",
]
