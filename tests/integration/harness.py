"""Helpers for worker integration tests: publish with kafka-python, run real worker processes,
compute the embedded oracle, compare profiles, read topics back."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from kafka import KafkaConsumer, KafkaProducer

from interest_stream.encoders.base import Encoder
from interest_stream.encoders.hashing import HashingEncoder
from interest_stream.schemas.events import TOPIC_OF_TYPE
from interest_stream.schemas.records import RawRecord
from interest_stream.store import open_store
from interest_stream.streams.core.batch import BatchCore
from interest_stream.streams.interest.horizons import InterestParams
from interest_stream.streams.interest.profile import UserProfile
from interest_stream.streams.lab import worker_process
from interest_stream.streams.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
"""The repository root (README, deploy/local)."""

__all__ = ["ROOT", "WorkerProcess"]

# The oracle folds with the model's default cluster background, as a worker on a store
# without a calibration does; pinned all the same, so that a calibrated store cannot differ.
PINNED = {"INTEREST_STREAM_CLUSTER_BACKGROUND": str(InterestParams.cluster_background)}


class WorkerProcess(worker_process.WorkerProcess):
    """The lab's worker process, with the cluster background of the oracle."""

    def __init__(self, **options: Any) -> None:
        super().__init__(env={**PINNED, **options.pop("env", {})}, **options)


def route(event: dict[str, Any]) -> str:
    return TOPIC_OF_TYPE.get(str(event.get("type")), "clicks")


def publish(
    bootstrap: str, prefix: str, messages: Iterable[tuple[str, bytes | None, bytes]]
) -> int:
    """Send (topic, key, value) messages and wait until the broker has them all."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    count = 0
    try:
        for topic, key, value in messages:
            producer.send(prefix + topic, key=key, value=value)
            count += 1
        producer.flush(timeout=60)
    finally:
        producer.close(timeout=10)
    return count


def event_messages(events: Sequence[dict[str, Any]]) -> list[tuple[str, bytes | None, bytes]]:
    return [(route(e), str(e["user_id"]).encode(), json.dumps(e).encode()) for e in events]


def read_topic(
    bootstrap: str, topic: str, *, expect: int | None = None, timeout_s: float = 30.0
) -> list[Any]:
    """All messages of a topic from the beginning (stops at `expect` or when idle)."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        consumer_timeout_ms=int(timeout_s * 1000),
    )
    messages = []
    try:
        for message in consumer:
            messages.append(message)
            if expect is not None and len(messages) >= expect:
                break
    finally:
        consumer.close()
    return messages


def consumer_lag(bootstrap: str, group: str, topics: Sequence[str]) -> int:
    """Messages of `topics` not yet committed by `group` (acked = written and announced)."""
    from kafka import TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        partitions = [
            TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()
        ]
        ends = consumer.end_offsets(partitions)
        committed = {tp: consumer.committed(tp) for tp in partitions}
    finally:
        consumer.close()
    return sum(end - (committed[tp] or 0) for tp, end in ends.items())


def create_topics(bootstrap: str, prefix: str, partitions: int = 6) -> None:
    from interest_stream.streams.admin import init_kafka

    init_kafka(load_settings(brokers=bootstrap, topic_prefix=prefix, partitions=partitions))


def oracle(
    events: Sequence[dict[str, Any]], tmp: Path, now: float, encoder: Encoder | None = None
) -> dict[str, UserProfile]:
    """Profiles from one clean embedded pass over the same events (the expected result)."""
    store = open_store(f"sqlite:///{tmp}/oracle.db")
    encoder = encoder if encoder is not None else HashingEncoder()  # a cache may be empty: falsy
    core = BatchCore(encoder=encoder, store=store, clock=lambda: now)
    records = [RawRecord.at(json.dumps(e).encode(), "oracle", i) for i, e in enumerate(events, 1)]
    for start in range(0, len(records), 500):
        core.process(records[start : start + 500])
    profiles = store.get(store.user_ids())
    store.close()
    return profiles


def wait_until(
    condition: Callable[[], bool],
    timeout_s: float,
    what: str,
    on_timeout: Callable[[], str] = lambda: "",
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(1.0)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}\n{on_timeout()}")


def total_events(store_url: str) -> int:
    store = open_store(store_url)
    try:
        return sum(p.event_count for p in store.get(store.user_ids()).values())
    finally:
        store.close()


def assert_profiles_equal(
    expected: dict[str, UserProfile], store_url: str, atol: float = 1e-5
) -> None:
    store = open_store(store_url)
    try:
        actual = store.get(sorted(expected))
        extra = set(store.user_ids()) - set(expected)
    finally:
        store.close()
    assert not extra, f"unexpected users {sorted(extra)[:5]}"
    assert sorted(actual) == sorted(expected)
    for user_id, want in expected.items():
        got = actual[user_id]
        assert got.event_count == want.event_count, user_id
        for horizon in ("short", "long"):
            w, g = getattr(want.state, horizon), getattr(got.state, horizon)
            scale = max(1.0, float(np.abs(w.decayed_sum).max()))
            np.testing.assert_allclose(
                g.decayed_sum, w.decayed_sum, atol=atol * scale, err_msg=f"{user_id} {horizon}"
            )
            assert abs(g.weight - w.weight) <= atol * max(1.0, abs(w.weight))
        assert sorted(got.domains) == sorted(want.domains)
        assert [c.label for c in got.clusters] == [c.label for c in want.clusters], user_id


def reference_sums(
    events: Sequence[dict[str, Any]], encoder: Encoder | None = None
) -> dict[str, tuple[int, dict[str, tuple[np.ndarray, float]]]]:
    """Each user's event count and decayed sums, straight from the design's formula and
    independent of the batch core and of `fold_events`: every distinct event id once,
    S_h = Σ w·e^(−λ_h·(t_ref − t))·x and W_h = Σ w·e^(−λ_h·(t_ref − t)) at t_ref = the user's
    latest event time, w = type weight × sentiment (a rating's, else the sentiment head's
    score of the text). For the delivery tests, whose events are all valid and new."""
    import math

    from interest_stream.schemas.events import parse_timestamp
    from interest_stream.streams.core.sentiment import SentimentScorer

    encoder = encoder if encoder is not None else HashingEncoder()
    params = InterestParams()
    unique = {e["event_id"]: e for e in events}
    texts = sorted({e["text"] for e in unique.values()})
    vectors = dict(zip(texts, encoder.encode(texts), strict=True))
    unrated = [t for t in texts if any(
        e["text"] == t and e["type"] == "review" and e.get("rating") is None
        for e in unique.values()
    )]  # fmt: skip
    scores = (
        SentimentScorer(encoder).score(np.stack([vectors[t] for t in unrated])) if unrated else []
    )
    text_sentiment = dict(zip(unrated, (float(s) for s in scores), strict=True))
    by_user: dict[str, list[dict[str, Any]]] = {}
    for event in unique.values():
        by_user.setdefault(event["user_id"], []).append(event)
    result = {}
    for user_id, mine in by_user.items():
        times = [parse_timestamp(e["ts"]) for e in mine]
        t_ref = max(times)
        horizons = {}
        for name, half_life in (
            ("short", params.short_half_life_s),
            ("long", params.long_half_life_s),
        ):
            decay = math.log(2) / half_life
            total = np.zeros(encoder.dim)
            weight_sum = 0.0
            for event, t in zip(mine, times, strict=True):
                weight = params.type_weights[event["type"]]
                if event["type"] == "review":
                    rating = event.get("rating")
                    weight *= (
                        (float(rating) - 3.0) / 2.0
                        if rating is not None
                        else text_sentiment[event["text"]]
                    )
                factor = weight * math.exp(-decay * (t_ref - t))
                total += factor * vectors[event["text"]].astype(np.float64)
                weight_sum += factor
            horizons[name] = (total, weight_sum)
        result[user_id] = (len(mine), horizons)
    return result


def assert_matches_reference(
    events: Sequence[dict[str, Any]], store_url: str, encoder: Encoder | None = None
) -> None:
    """The stored profiles hold exactly the reference fold's events and decayed sums."""
    reference = reference_sums(events, encoder)
    store = open_store(store_url)
    try:
        stored = store.get(sorted(reference))
    finally:
        store.close()
    assert sorted(stored) == sorted(reference)
    for user_id, (count, horizons) in reference.items():
        profile = stored[user_id]
        assert profile.event_count == count, user_id
        for name, (total, weight_sum) in horizons.items():
            state = getattr(profile.state, name)
            scale = max(1.0, float(np.abs(total).max()))
            np.testing.assert_allclose(
                state.decayed_sum, total, atol=1e-4 * scale, err_msg=f"{user_id} {name}"
            )
            assert abs(state.weight - weight_sum) <= 1e-4 * max(1.0, abs(weight_sum)), user_id
