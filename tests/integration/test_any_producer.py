"""Producers that are not ours, and records the broker accepts but we cannot use, against a
running worker on the real servers.

- A librdkafka producer (confluent-kafka, with its default partitioner: CRC32 of the key,
  not Java's murmur2) puts a user's events on another partition than the one `forget`
  and the fences name for that user. The worker forwards them to their user's partition,
  so `forget` erases for good.
- A malformed record of about 1.02 MB (the broker takes up to 1,048,588 bytes; our producer
  refuses requests over 1,000,000) goes to the DLQ as a bounded reference, and the worker
  stays up and goes on with the next records.
"""

from __future__ import annotations

import json
import time
import zlib
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from interest_stream.store import open_store
from interest_stream.streams.cli import main
from interest_stream.streams.core.routing import partition_of
from tests.integration.harness import (
    WorkerProcess,
    consumer_lag,
    create_topics,
    event_messages,
    publish,
    read_topic,
    wait_until,
)

pytestmark = [pytest.mark.kafka, pytest.mark.cassandra, pytest.mark.slow]

PARTITIONS = 4


def _user_placed_elsewhere_by_librdkafka() -> str:
    """A user id that librdkafka's default partitioner and murmur2 put apart."""
    for i in range(100):
        user = f"rdkafka-user-{i}"
        if zlib.crc32(user.encode()) % PARTITIONS != partition_of(user.encode(), PARTITIONS):
            return user
    raise AssertionError("no such user id among 100")


def _clicks(user: str, count: int, start_ms: int, tag: str) -> list[dict[str, Any]]:
    return [
        {
            "event_id": f"{tag}-{user}-{i}",
            "user_id": user,
            "ts": start_ms + i * 1000,
            "type": "click",
            "text": f"Astronauts stranded on Mars, part {i % 3}",
        }
        for i in range(count)
    ]


def _produce_with_librdkafka(bootstrap: str, topic: str, events: list[dict[str, Any]]) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all"})  # default partitioner
    for event in events:
        producer.produce(topic, key=event["user_id"].encode(), value=json.dumps(event).encode())
    assert producer.flush(30) == 0


def _event_count(store_url: str, user: str) -> int | None:
    store = open_store(store_url)
    try:
        profile = store.get([user]).get(user)
        return None if profile is None else profile.event_count
    finally:
        store.close()


def _forget(servers: dict[str, str], user: str, *options: str) -> None:
    command = [
        "forget", user, "--store", servers["store"], "--brokers", servers["bootstrap"],
        "--topic-prefix", servers["prefix"], "--group", servers["prefix"] + "group", *options,
    ]  # fmt: skip
    result = CliRunner().invoke(main, command, catch_exceptions=False)
    assert result.exit_code == 0, result.output


@pytest.fixture
def servers(
    kafka_bootstrap: str, cassandra_contact: tuple[str, int], keyspace: str, topic_prefix: str
) -> dict[str, str]:
    host, port = cassandra_contact
    store_url = f"cassandra://{host}:{port}/{keyspace}"
    open_store(store_url, create_schema=True).close()
    create_topics(kafka_bootstrap, topic_prefix, partitions=PARTITIONS)
    return {"bootstrap": kafka_bootstrap, "prefix": topic_prefix, "store": store_url}


def test_a_user_produced_by_librdkafka_and_forgotten_stays_forgotten(
    servers: dict[str, str], tmp_path: Path
) -> None:
    user = _user_placed_elsewhere_by_librdkafka()
    clicks = servers["prefix"] + "clicks"
    now_ms = int(time.time() * 1000)
    _produce_with_librdkafka(
        servers["bootstrap"], clicks, _clicks(user, 10, now_ms - 7_200_000, "old")
    )
    worker = WorkerProcess(
        bootstrap=servers["bootstrap"],
        prefix=servers["prefix"],
        store_url=servers["store"],
        log_path=tmp_path / "worker.log",
    ).start()
    try:
        wait_until(
            lambda: _event_count(servers["store"], user) == 10, 120, "10 events", worker.log_tail
        )
        _forget(servers, user)
        fresh = _clicks(user, 1, int(time.time() * 1000) + 1000, "new")  # after the erasure
        _produce_with_librdkafka(servers["bootstrap"], clicks, fresh)
        wait_until(
            lambda: _event_count(servers["store"], user) is not None,
            120,
            "the new event applied",
            worker.log_tail,
        )
        time.sleep(2)  # anything else in flight for the user lands too
        assert worker.alive(), worker.log_tail()
    finally:
        worker.stop()
    # Only the event after the erasure: the 10 erased ones never come back.
    assert _event_count(servers["store"], user) == 1


def test_a_record_too_large_to_copy_whole_goes_to_the_dlq_as_a_reference(
    servers: dict[str, str], tmp_path: Path
) -> None:
    bootstrap, prefix = servers["bootstrap"], servers["prefix"]
    big = b'{"event_id": "big", "user_id": "u-big", "text": "' + b"x" * 1_020_000 + b'"'
    now_ms = int(time.time() * 1000)
    after = _clicks("after-big", 3, now_ms - 60_000, "after")
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, max_request_size=1_048_576)
    producer.send(prefix + "clicks", key=b"u-big", value=big, partition=0).get(30)
    producer.close()
    publish(bootstrap, prefix, event_messages(after))
    worker = WorkerProcess(
        bootstrap=bootstrap, prefix=prefix, store_url=servers["store"], log_path=tmp_path / "w.log"
    ).start()
    try:
        wait_until(
            lambda: _event_count(servers["store"], "after-big") == 3,
            120,
            "the records after the large one",
            worker.log_tail,
        )
        [letter] = read_topic(bootstrap, prefix + "interest-stream-dlq", expect=1, timeout_s=60)
        assert worker.alive(), worker.log_tail()
    finally:
        worker.stop()
    headers = {name: value.decode() for name, value in letter.headers}
    assert headers["source.topic"] == "clicks" and headers["source.partition"] == "0"
    assert headers["original.bytes"] == str(len(big))
    assert "not JSON" in headers["reason"] and "read it whole from clicks:0" in headers["reason"]
    assert big.startswith(letter.value) and 0 < len(letter.value) < 1_000_000


def test_an_erasure_is_bound_to_the_input_offsets_not_to_the_clocks(
    servers: dict[str, str], tmp_path: Path
) -> None:
    from interest_stream.streams.interest.summary import event_key

    user = "clock-ahead"
    now_ms = int(time.time() * 1000)
    before = _clicks(user, 3, now_ms - 3_600_000, "old")
    before.append({**_clicks(user, 1, now_ms + 240_000, "ahead")[0]})  # a clock 4 min ahead
    publish(servers["bootstrap"], servers["prefix"], event_messages(before))
    _forget(servers, user, "--wait", "0")  # no worker runs yet
    late = _clicks(user, 1, now_ms - 1_800_000, "late")  # after it, stamped before: dropped
    fresh = _clicks(user, 1, int(time.time() * 1000) + 1000, "fresh")  # new activity
    publish(servers["bootstrap"], servers["prefix"], event_messages(late + fresh))
    worker = WorkerProcess(
        bootstrap=servers["bootstrap"],
        prefix=servers["prefix"],
        store_url=servers["store"],
        log_path=tmp_path / "worker.log",
    ).start()
    try:
        topics = [servers["prefix"] + t for t in ("clicks", "reviews", "queries")]
        wait_until(
            lambda: consumer_lag(servers["bootstrap"], servers["prefix"] + "group", topics) == 0,
            120,
            "every record acknowledged",
            worker.log_tail,
        )
    finally:
        worker.stop()
    store = open_store(servers["store"])
    try:
        profile = store.get([user])[user]
    finally:
        store.close()
    assert set(profile.recent_ids) == {event_key(fresh[0]["event_id"])}
