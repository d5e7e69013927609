"""Chaos: two workers and `forget` while one worker is frozen and thawed (SIGSTOP/SIGCONT)
and another killed (SIGKILL), with events produced by a librdkafka client (confluent-kafka,
its default partitioner) and by kafka-python. The end state equals one clean embedded pass
over the same events, forgotten users are in no table and their latest record on
profile-updates is a tombstone, and nothing acknowledged is lost."""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from interest_stream.store import open_store
from interest_stream.streams.cli import main
from interest_stream.streams.demo import generate
from tests.integration.harness import (
    WorkerProcess,
    assert_matches_reference,
    assert_profiles_equal,
    consumer_lag,
    event_messages,
    oracle,
    publish,
    read_topic,
    route,
    total_events,
    wait_until,
)

pytestmark = [pytest.mark.kafka, pytest.mark.cassandra, pytest.mark.slow]


def _produce_with_librdkafka(bootstrap: str, prefix: str, events: list[dict[str, Any]]) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    for event in events:
        producer.produce(
            prefix + route(event), key=event["user_id"].encode(), value=json.dumps(event).encode()
        )
    assert producer.flush(60) == 0


def test_frozen_killed_and_forgetting_workers_end_at_the_clean_pass(
    cluster: dict[str, str], tmp_path: Path
) -> None:
    events = generate(users=40, events_per_user=40, seed=31, duplicates=0.03).events
    rng = random.Random(31)
    rng.shuffle(events)
    users = sorted({e["user_id"] for e in events})
    forgotten = users[:3]
    kept_events = [e for e in events if e["user_id"] not in forgotten]
    expected = oracle(kept_events, tmp_path, time.time())
    # Half of the events from each client, interleaved in two waves.
    by_client = [events[0::2], events[1::2]]
    half = [len(part) // 2 for part in by_client]
    publish(cluster["bootstrap"], cluster["prefix"], event_messages(by_client[0][: half[0]]))
    _produce_with_librdkafka(cluster["bootstrap"], cluster["prefix"], by_client[1][: half[1]])
    common: dict[str, Any] = {
        "bootstrap": cluster["bootstrap"],
        "prefix": cluster["prefix"],
        "store_url": cluster["store"],
        "batch_size": 64,
    }
    workers = [WorkerProcess(log_path=tmp_path / "a.log", **common).start()]
    logs = lambda: "\n".join(w.log_tail() for w in workers)  # noqa: E731
    try:
        wait_until(lambda: total_events(cluster["store"]) > 200, 120, "first progress", logs)
        workers.append(WorkerProcess(log_path=tmp_path / "b.log", **common).start())
        frozen = workers[0]
        assert frozen.pid is not None
        os.kill(frozen.pid, signal.SIGSTOP)  # a long GC pause: its partitions move to b
        publish(cluster["bootstrap"], cluster["prefix"], event_messages(by_client[0][half[0] :]))
        before = total_events(cluster["store"])
        wait_until(lambda: total_events(cluster["store"]) > before, 120, "b folds", logs)
        os.kill(frozen.pid, signal.SIGCONT)  # the zombie resumes: its late writes are fenced
        result = CliRunner().invoke(
            main,
            [
                "forget",
                *forgotten,
                "--store",
                cluster["store"],
                "--brokers",
                cluster["bootstrap"],
                "--topic-prefix",
                cluster["prefix"],
                "--group",
                cluster["prefix"] + "group",
                "--wait",
                "120",
            ],
            catch_exceptions=False,
        )
        assert result.exit_code == 0, result.output
        _produce_with_librdkafka(cluster["bootstrap"], cluster["prefix"], by_client[1][half[1] :])
        workers[1].kill()  # SIGKILL mid-stream
        workers.append(WorkerProcess(log_path=tmp_path / "c.log", **common).start())
        want = sum(p.event_count for p in expected.values())
        wait_until(lambda: total_events(cluster["store"]) >= want, 300, "all applied", logs)
        topics = [cluster["prefix"] + t for t in ("clicks", "reviews", "queries")]
        wait_until(
            lambda: consumer_lag(cluster["bootstrap"], cluster["prefix"] + "group", topics) == 0,
            120,
            "every record acknowledged",
            logs,
        )
    finally:
        for worker in workers:
            worker.kill()
    assert_profiles_equal(expected, cluster["store"])
    assert_matches_reference(kept_events, cluster["store"])
    store = open_store(cluster["store"])
    try:
        assert store.get(forgotten) == {}
        session = store._session  # type: ignore[attr-defined]
        for table in ("profiles", "profile_domains", "profile_ann"):
            for user in forgotten:
                row = session.execute(
                    f"SELECT count(*) FROM {store.keyspace}.{table} WHERE user_id = %s",  # type: ignore[attr-defined]
                    (user,),
                ).one()
                assert row[0] == 0, (table, user)
    finally:
        store.close()
    latest: dict[bytes, bytes | None] = {}
    for message in read_topic(
        cluster["bootstrap"], cluster["prefix"] + "profile-updates", timeout_s=5
    ):
        latest[message.key] = message.value
    for user in forgotten:
        assert latest.get(user.encode(), b"absent") is None, user
