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
from interest_stream.streams.lab import worker_process
from interest_stream.streams.model.horizons import InterestParams
from interest_stream.streams.model.profile import UserProfile
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
    core = BatchCore(encoder=encoder or HashingEncoder(), store=store, clock=lambda: now)
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
