"""Positive events, weights and the per-user time split into history and held-out targets."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from interest_stream.schemas.events import Event
from interest_stream.streams.interest.horizons import InterestParams
from interest_stream.streams.interest.sentiment import event_weight, rating_sentiment
from interest_stream.streams.lab.evaluate.data import text_of


def is_positive(event: Event, sentiment: Mapping[str, float], threshold: float) -> bool:
    """A click, or a review at/above the rating threshold, on an item.

    An unrated review counts when its text sentiment reaches the sentiment the threshold
    rating maps to (4 -> +0.5), the same mapping the profile weights use.
    """
    if event.item_id is None:
        return False
    if event.type == "click":
        return True
    if event.type != "review":
        return False
    if event.rating is not None:
        return event.rating >= threshold
    return sentiment.get(text_of(event), 0.0) >= rating_sentiment(threshold)


def weigh(event: Event, params: InterestParams, sentiment: Mapping[str, float]) -> float:
    """The product's weight for an event: type weight times rating or text sentiment."""
    return event_weight(
        event.type, params, rating=event.rating, text_sentiment=sentiment.get(text_of(event))
    )


@dataclass(frozen=True)
class UserSplit:
    """One user's history before the cut and the new items they liked from the cut on."""

    user_id: str
    cut: float
    history: tuple[Event, ...]
    targets: tuple[str, ...]
    seen: frozenset[str]


def split_user(
    events: Sequence[Event],
    fraction: float,
    positive: Callable[[Event], bool],
    min_history: int,
) -> UserSplit | str:
    """Hold out the last `fraction` of a user's positive events (at least one).

    The cut is the time of the first held-out positive; the history is everything strictly
    before it (all types, negatives included), so nothing at or after the cut can leak into
    a profile. Targets are the held-out items not touched before the cut. Returns the reason
    as a string when the user cannot be evaluated.
    """
    ordered = sorted(events, key=lambda e: (e.ts, e.event_id))
    positives = [e for e in ordered if positive(e)]
    held = max(1, round(fraction * len(positives)))
    if len(positives) - held < min_history:
        return "too few positive events"
    cut = positives[len(positives) - held].ts
    history = tuple(e for e in ordered if e.ts < cut)
    if sum(1 for e in history if positive(e)) < min_history:
        return "too few positive events"
    seen = frozenset(e.item_id for e in history if e.item_id is not None)
    targets = tuple(
        dict.fromkeys(
            e.item_id
            for e in ordered
            if e.ts >= cut and positive(e) and e.item_id is not None and e.item_id not in seen
        )
    )
    if not targets:
        return "no new item held out"
    return UserSplit(ordered[0].user_id, cut, history, targets, seen)


def split_users(
    by_user: Mapping[str, Sequence[Event]],
    fraction: float,
    positive: Callable[[Event], bool],
    min_history: int,
) -> tuple[list[UserSplit], dict[str, int]]:
    """Splits of every user that can be evaluated (by cut time), and why others were not."""
    splits: list[UserSplit] = []
    skipped: Counter[str] = Counter()
    for user_id in sorted(by_user):
        result = split_user(by_user[user_id], fraction, positive, min_history)
        if isinstance(result, str):
            skipped[result] += 1
        else:
            splits.append(result)
    splits.sort(key=lambda s: (s.cut, s.user_id))
    return splits, dict(skipped)


def validation_splits(
    splits: Sequence[UserSplit],
    fraction: float,
    positive: Callable[[Event], bool],
    min_history: int,
) -> list[UserSplit]:
    """The same split applied to each test history: the fraction just before the test one."""
    histories = {s.user_id: s.history for s in splits}
    return split_users(histories, fraction, positive, min_history)[0]
