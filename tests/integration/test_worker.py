"""The streaming worker against the real local Kafka and Cassandra: exactly-once effect.

Every test publishes a generated workload, runs real `interest-stream worker` processes
and compares the final Cassandra profiles with one clean embedded pass over the same
events (the oracle). The model-free hashing encoder keeps these tests about delivery, not
about the sentence encoder (which has its own parity tests).
"""

from __future__ import annotations

import json
import random
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from interest_stream.store import open_store
from interest_stream.streams.demo import generate
from tests.integration.harness import (
    ROOT,
    WorkerProcess,
    assert_matches_reference,
    assert_profiles_equal,
    consumer_lag,
    event_messages,
    oracle,
    publish,
    read_topic,
    total_events,
    wait_until,
)

pytestmark = [pytest.mark.kafka, pytest.mark.cassandra, pytest.mark.slow]


def _workload(users: int, per_user: int, seed: int) -> list[dict]:
    events = generate(users=users, events_per_user=per_user, seed=seed, duplicates=0.03).events
    # Out of order: shuffle within windows of a few hundred events.
    rng = random.Random(seed)
    for start in range(0, len(events), 300):
        window = events[start : start + 300]
        rng.shuffle(window)
        events[start : start + 300] = window
    return events


def _expected_count(expected: dict) -> int:
    return sum(p.event_count for p in expected.values())


def _wait_done(
    cluster: dict[str, str], expected: dict, workers: list[WorkerProcess], timeout_s: float = 300
) -> None:
    want = _expected_count(expected)
    wait_until(
        lambda: total_events(cluster["store"]) >= want,
        timeout_s,
        f"{want} events applied",
        lambda: "\n".join(w.log_tail() for w in workers),
    )


def _announced_versions(cluster: dict[str, str]) -> dict[str, int]:
    """The version in the latest profile-update of each user (a user's updates share a
    partition, so topic order is publish order)."""
    latest: dict[str, int] = {}
    for message in read_topic(
        cluster["bootstrap"], cluster["prefix"] + "profile-updates", timeout_s=3
    ):
        if message.value is not None:
            latest[message.key.decode()] = json.loads(message.value)["version"]
    return latest


def _wait_all_announced(cluster: dict[str, str], workers: list[WorkerProcess]) -> None:
    """Every stored profile's version has been announced on profile-updates, even where a
    worker was killed between storing a profile and announcing it."""
    store = open_store(cluster["store"])
    try:
        stored = {u: p.version for u, p in store.get(store.user_ids()).items()}
    finally:
        store.close()
    wait_until(
        lambda: _announced_versions(cluster) == stored,
        60,
        "every stored version announced",
        lambda: "\n".join(w.log_tail() for w in workers),
    )


def test_worker_matches_the_embedded_oracle(cluster: dict[str, str], tmp_path: Path):
    events = _workload(users=200, per_user=50, seed=11)
    assert len(events) >= 10_000
    expected = oracle(events, tmp_path, time.time())
    publish(cluster["bootstrap"], cluster["prefix"], event_messages(events))
    worker = WorkerProcess(
        bootstrap=cluster["bootstrap"],
        prefix=cluster["prefix"],
        store_url=cluster["store"],
        log_path=tmp_path / "worker.log",
        batch_size=512,
    ).start()
    try:
        _wait_done(cluster, expected, [worker])
        assert worker.alive(), worker.log_tail()
    finally:
        worker.stop()
    assert_profiles_equal(expected, cluster["store"])
    assert_matches_reference(events, cluster["store"])  # the oracle checked independently
    updates = read_topic(cluster["bootstrap"], cluster["prefix"] + "profile-updates", timeout_s=10)
    assert {m.key.decode() for m in updates} == set(expected)
    assert all(m.value for m in updates)


def test_kill_9_at_random_points_loses_nothing_and_applies_nothing_twice(
    cluster: dict[str, str], tmp_path: Path
):
    # Large enough that five incarnations (each killed 0-1.5 s after its first progress)
    # do not finish it: a worker that has nothing left cannot show progress.
    events = _workload(users=60, per_user=300, seed=12)
    expected = oracle(events, tmp_path, time.time())
    want = _expected_count(expected)
    publish(cluster["bootstrap"], cluster["prefix"], event_messages(events))
    rng = random.Random(5)
    log = tmp_path / "worker.log"
    kills = 0
    while kills < 5:
        worker = WorkerProcess(
            bootstrap=cluster["bootstrap"],
            prefix=cluster["prefix"],
            store_url=cluster["store"],
            log_path=log,
            batch_size=64,
        ).start()
        try:
            # Wait until this incarnation has done some work, then kill it at a random moment.
            before = total_events(cluster["store"])
            assert before < want, "the workload ended before this incarnation started"
            wait_until(
                lambda b=before: total_events(cluster["store"]) > b,
                120,
                "progress after restart",
                worker.log_tail,
            )
            time.sleep(rng.uniform(0.0, 1.5))
        finally:
            worker.kill()
        kills += 1
        assert total_events(cluster["store"]) <= want, "double counting"
    worker = WorkerProcess(
        bootstrap=cluster["bootstrap"],
        prefix=cluster["prefix"],
        store_url=cluster["store"],
        log_path=log,
        batch_size=64,
    ).start()
    try:
        _wait_done(cluster, expected, [worker])
        _wait_all_announced(cluster, [worker])
    finally:
        worker.stop()
    assert_profiles_equal(expected, cluster["store"])


def test_kill_9_between_coalesced_folds_and_their_flush_loses_nothing(
    cluster: dict[str, str], tmp_path: Path
):
    """With a long flush window the worker folds several full batches in memory before it
    writes; killed in that window, it has stored and acknowledged nothing of them, and a
    restarted worker ends at the single clean pass."""
    events = _workload(users=40, per_user=50, seed=14)
    expected = oracle(events, tmp_path, time.time())
    publish(cluster["bootstrap"], cluster["prefix"], event_messages(events))
    common: dict[str, Any] = {
        "bootstrap": cluster["bootstrap"],
        "prefix": cluster["prefix"],
        "store_url": cluster["store"],
        "log_path": tmp_path / "worker.log",
        "batch_size": 64,
    }
    # Every event is in Kafka before the worker starts, so a batch is short only when a fetch
    # is slow; a short batch means "caught up" and flushes. A long batch wait keeps a slow
    # fetch on a loaded machine (CI) from looking like the end of the backlog.
    coalescing = WorkerProcess(
        env={"INTEREST_STREAM_FLUSH_INTERVAL_MS": "60000"}, **common, batch_wait_ms=30_000
    )
    coalescing.start()
    try:
        # Several full batches folded, none flushed: the window is open.
        wait_until(
            lambda: coalescing.totals().batches >= 3,
            120,
            "three folded batches",
            coalescing.log_tail,
        )
        folded = coalescing.totals()
        assert folded.flushes == 0 and folded.applied == 0, folded
    finally:
        coalescing.kill()
    assert total_events(cluster["store"]) == 0  # nothing of the open window was stored
    worker = WorkerProcess(**common).start()
    try:
        _wait_done(cluster, expected, [worker])
        _wait_all_announced(cluster, [worker])
    finally:
        worker.stop()
    assert_profiles_equal(expected, cluster["store"])


@pytest.mark.parametrize(
    ("window", "encoder"),
    [
        ("after-claim", "hashing"),
        ("after-write", "hashing"),
        ("before-publish", "hashing"),
        ("before-ack", "hashing"),
        ("after-write", "onnx"),  # the exported sentence encoder, as in production
    ],
)
def test_kill_9_exactly_at_each_window_loses_nothing_and_applies_nothing_twice(
    window: str, encoder: str, cluster: dict[str, str], tmp_path: Path
):
    """The worker kills itself (SIGKILL) the first time it reaches `window`: after claiming
    its fences, after storing profiles, before publishing their updates, or after the
    broker confirmed them but before the offsets are committed. A restarted worker ends at
    the single clean pass, with every stored version announced."""
    from interest_stream.streams import app

    events = _workload(users=20, per_user=15, seed=21)
    onnx = app.build_encoder(app.load_settings(), "onnx") if encoder == "onnx" else None
    expected = oracle(events, tmp_path, time.time(), onnx)
    publish(cluster["bootstrap"], cluster["prefix"], event_messages(events))
    common: dict[str, Any] = {
        "bootstrap": cluster["bootstrap"],
        "prefix": cluster["prefix"],
        "store_url": cluster["store"],
        "log_path": tmp_path / "worker.log",
        "batch_size": 64,
        "encoder": encoder,
    }
    crashing = WorkerProcess(env={"INTEREST_STREAM_FAULT_CRASH_AT": window}, **common).start()
    try:
        wait_until(lambda: not crashing.alive(), 120, f"the kill at {window}", crashing.log_tail)
        assert crashing.process is not None and crashing.process.returncode == -9
        stored = total_events(cluster["store"])
        assert stored <= _expected_count(expected)
        if window in ("after-claim",):
            assert stored == 0  # killed before anything was written
        else:
            assert stored > 0  # killed after the first write
    finally:
        crashing.kill()
    worker = WorkerProcess(**common).start()
    try:
        _wait_done(cluster, expected, [worker])
        _wait_all_announced(cluster, [worker])
    finally:
        worker.stop()
    assert_profiles_equal(expected, cluster["store"])
    assert_matches_reference(events, cluster["store"], onnx)


def _restart(server: str) -> None:
    subprocess.run([str(ROOT / "deploy/local/restart"), server], check=True, timeout=300)


def test_worker_rides_out_broker_and_store_restarts(cluster: dict[str, str], tmp_path: Path):
    events = _workload(users=80, per_user=50, seed=13)
    expected = oracle(events, tmp_path, time.time())
    third = len(events) // 3
    messages = event_messages(events)
    publish(cluster["bootstrap"], cluster["prefix"], messages[:third])
    worker = WorkerProcess(
        bootstrap=cluster["bootstrap"],
        prefix=cluster["prefix"],
        store_url=cluster["store"],
        log_path=tmp_path / "worker.log",
        batch_size=64,
    ).start()
    try:
        wait_until(lambda: total_events(cluster["store"]) > 0, 120, "first writes", worker.log_tail)
        _restart("kafka")
        publish(cluster["bootstrap"], cluster["prefix"], messages[third : 2 * third])
        wait_until(
            lambda: total_events(cluster["store"]) > third // 2,
            180,
            "progress after the broker restart",
            worker.log_tail,
        )
        _restart("cassandra")
        publish(cluster["bootstrap"], cluster["prefix"], messages[2 * third :])
        _wait_done(cluster, expected, [worker], timeout_s=300)
        assert worker.alive(), worker.log_tail()
    finally:
        worker.stop()
    assert_profiles_equal(expected, cluster["store"])


def _group_members(bootstrap: str, group: str) -> int:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    [future] = admin.describe_consumer_groups([group], request_timeout=10).values()
    return len(future.result().members)


def test_two_workers_in_one_group_end_at_the_oracle(cluster: dict[str, str], tmp_path: Path):
    events = _workload(users=100, per_user=50, seed=14)
    expected = oracle(events, tmp_path, time.time())
    messages = event_messages(events)
    half = len(messages) // 2
    publish(cluster["bootstrap"], cluster["prefix"], messages[:half])
    common = {
        "bootstrap": cluster["bootstrap"],
        "prefix": cluster["prefix"],
        "store_url": cluster["store"],
        "batch_size": 64,
    }
    first = WorkerProcess(log_path=tmp_path / "w1.log", **common).start()  # type: ignore[arg-type]
    second = WorkerProcess(log_path=tmp_path / "w2.log", **common)  # type: ignore[arg-type]
    try:
        wait_until(
            lambda: total_events(cluster["store"]) > 500,
            120,
            "first worker progress",
            first.log_tail,
        )
        second.start()  # joins mid-stream: a rebalance moves partitions under load
        group = cluster["prefix"] + "group"
        wait_until(
            lambda: _group_members(cluster["bootstrap"], group) == 2,
            120,
            "the second worker in the group",
            second.log_tail,
        )
        # The rest arrives once both hold partitions: each of them has events to fold.
        publish(cluster["bootstrap"], cluster["prefix"], messages[half:])
        _wait_done(cluster, expected, [first, second])
        totals = [first.totals(), second.totals()]  # while their metrics are served
    finally:
        first.stop()
        second.stop()
    assert_profiles_equal(expected, cluster["store"])
    assert all(t.applied > 0 for t in totals), totals  # both workers consumed and wrote
    print(f"lost fences: {sum(t.lost_fences for t in totals)}")


MALFORMED: list[bytes] = [
    b"",
    b" ",
    b"{",
    b"}",
    b"null",
    b"true",
    b"42",
    b'"text"',
    b"[]",
    b"[{}]",
    b"{}",
    b"\xff\xfe\x00",
    b"\xc3\x28",
    b'{"event_id": "x"}',
    b'{"event_id": "b1", "user_id": "u", "ts": 1790000000000, "type": "click"}',
    b'{"event_id": "b2", "user_id": "u", "ts": 1790000000000, "text": "t"}',
    b'{"event_id": "b3", "user_id": "u", "type": "click", "text": "t"}',
    b'{"user_id": "u", "ts": 1790000000000, "type": "click", "text": "t"}',
    b'{"event_id": "b4", "ts": 1790000000000, "type": "click", "text": "t"}',
    b'{"event_id": "b5", "user_id": "u", "ts": 1790000000000, "type": "buy", "text": "t"}',
    b'{"event_id": "b6", "user_id": "u", "ts": 1790000000000, "type": "click", "text": ""}',
    b'{"event_id": "b7", "user_id": "u", "ts": 1790000000000, "type": "click", "text": "  "}',
    b'{"event_id": "b8", "user_id": "u", "ts": "soon", "type": "click", "text": "t"}',
    b'{"event_id": "b9", "user_id": "u", "ts": "2025-01-01T00:00:00", "type": "click", '
    b'"text": "t"}',
    b'{"event_id": "b10", "user_id": "u", "ts": 0, "type": "click", "text": "t"}',
    b'{"event_id": "b11", "user_id": "u", "ts": 4102444800000, "type": "click", "text": "t"}',
    b'{"event_id": "b12", "user_id": "u", "ts": true, "type": "click", "text": "t"}',
    b'{"event_id": 12, "user_id": "u", "ts": 1790000000000, "type": "click", "text": "t"}',
    b'{"event_id": "b13", "user_id": ["u"], "ts": 1790000000000, "type": "click", "text": "t"}',
    b'{"event_id": "b14", "user_id": "u", "ts": 1790000000000, "type": "click", "text": 5}',
    b'{"event_id": "b15", "user_id": "u", "ts": 1790000000000, "type": "review", "text": "t",'
    b' "rating": 9}',
    b'{"event_id": "b16", "user_id": "u", "ts": 1790000000000, "type": "review", "text": "t",'
    b' "rating": "5"}',
    b'{"event_id": "b17", "user_id": "u", "ts": 1790000000000, "type": "click", "text": "t",'
    b' "rating": 4}',
    b'{"event_id": "' + b"e" * 200 + b'", "user_id": "u", "ts": 1790000000000, '
    b'"type": "click", "text": "t"}',
    b'{"event_id": "b18", "user_id": "u", "ts": 1790000000000, "type": "click", "text": "'
    + b"x" * 5000
    + b'"}',
    b'{"event_id": "b19", "user_id": "u", "ts": 1790000000000, "type": "click", "text": "t",'
    b' "domain": ""}',
    b"[" * 100_000,
]


@settings(
    max_examples=1,
    database=None,
    phases=[Phase.generate],
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
@given(noise=st.lists(st.binary(min_size=1, max_size=300), min_size=40, max_size=40))
def test_bad_input_lands_on_the_dlq_and_the_worker_stays_up(
    noise: list[bytes], cluster: dict[str, str], tmp_path_factory: pytest.TempPathFactory
):
    tmp_path = tmp_path_factory.mktemp("dlq")
    events = _workload(users=30, per_user=30, seed=15)
    expected = oracle(events, tmp_path, time.time())
    good = event_messages(events)
    bad = [
        (("clicks", "reviews", "queries")[i % 3], b"k%d" % i, raw)
        for i, raw in enumerate(MALFORMED + noise)
    ]
    # A valid review on the clicks topic is also bad: its type does not match the topic.
    bad.append(
        (
            "clicks",
            b"u",
            b'{"event_id": "m1", "user_id": "u", "ts": 1790000000000,'
            b' "type": "review", "text": "fine", "rating": 4}',
        )
    )
    mixed = list(good)
    rng = random.Random(3)
    for message in bad:
        mixed.insert(rng.randrange(len(mixed) + 1), message)
    publish(cluster["bootstrap"], cluster["prefix"], mixed)
    worker = WorkerProcess(
        bootstrap=cluster["bootstrap"],
        prefix=cluster["prefix"],
        store_url=cluster["store"],
        log_path=tmp_path / "worker.log",
    ).start()
    try:
        _wait_done(cluster, expected, [worker])
        dlq = read_topic(
            cluster["bootstrap"],
            cluster["prefix"] + "interest-stream-dlq",
            expect=len(bad),
            timeout_s=60,
        )
        assert worker.alive(), worker.log_tail()
    finally:
        worker.stop()
    assert len(MALFORMED) >= 30
    assert sorted(m.value for m in dlq) == sorted(raw for _, _, raw in bad)
    for message in dlq:
        headers = dict(message.headers)
        assert headers["reason"] and headers["source.topic"] and headers["source.offset"]
    assert_profiles_equal(expected, cluster["store"])


def test_item_only_clicks_use_the_catalogue_and_unknown_items_go_to_the_dlq(
    cluster: dict[str, str], tmp_path: Path
):
    items = [
        (
            "items",
            b"film-1",
            b'{"item_id": "film-1", "text": "Astronauts stranded on Mars", "domain": "movies"}',
        ),
        ("items", b"soup-1", b'{"item_id": "soup-1", "text": "Lentil soup with cumin"}'),
    ]
    publish(cluster["bootstrap"], cluster["prefix"], items)
    worker = WorkerProcess(
        bootstrap=cluster["bootstrap"],
        prefix=cluster["prefix"],
        store_url=cluster["store"],
        log_path=tmp_path / "worker.log",
    ).start()
    try:
        store = open_store(cluster["store"])
        try:
            wait_until(
                lambda: len(store.get_items(["film-1", "soup-1"])) == 2,
                120,  # type: ignore[attr-defined]
                "items stored",
                worker.log_tail,
            )
        finally:
            store.close()
        clicks = [
            {
                "event_id": f"c{i}",
                "user_id": "fan",
                "ts": 1_790_000_000_000 + i,
                "type": "click",
                "item_id": "film-1",
            }
            for i in range(3)
        ]
        unknown = {
            "event_id": "c9",
            "user_id": "fan",
            "ts": 1_790_000_000_000,
            "type": "click",
            "item_id": "missing-item",
        }
        publish(cluster["bootstrap"], cluster["prefix"], event_messages([*clicks, unknown]))
        wait_until(
            lambda: total_events(cluster["store"]) >= 3, 120, "clicks applied", worker.log_tail
        )
        dlq = read_topic(
            cluster["bootstrap"], cluster["prefix"] + "interest-stream-dlq", expect=1, timeout_s=30
        )
    finally:
        worker.stop()
    assert [dict(m.headers)["reason"].decode() for m in dlq] == [
        "field 'item_id': unknown item 'missing-item' and the click carries no text"
    ]
    store = open_store(cluster["store"])
    try:
        profile = store.get(["fan"])["fan"]
    finally:
        store.close()
    assert profile.event_count == 3 and list(profile.domains) == ["movies"]
    assert profile.clusters[0].label == "Astronauts stranded on Mars"


def test_a_publish_that_can_never_succeed_stops_the_worker_with_a_clear_message(
    kafka_bootstrap: str,
    cassandra_contact: tuple[str, int],
    keyspace: str,
    topic_prefix: str,
    tmp_path: Path,
):
    """A broker refusal that retrying cannot fix (a record larger than the topic accepts)
    reaches the supervisor: the worker stops, says why, and acknowledges nothing."""
    from kafka.admin import KafkaAdminClient, NewTopic

    host, port = cassandra_contact
    store_url = f"cassandra://{host}:{port}/{keyspace}"
    open_store(store_url, create_schema=True).close()
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        topics = [NewTopic(f"{topic_prefix}{t}", 2, 1) for t in ("clicks", "reviews", "queries")]
        # Profile updates carry two 384-float vectors, far over this limit.
        topics.append(
            NewTopic(
                f"{topic_prefix}profile-updates",
                2,
                1,
                topic_configs={"cleanup.policy": "compact", "max.message.bytes": "1000"},
            )
        )
        topics.append(NewTopic(f"{topic_prefix}interest-stream-dlq", 2, 1))
        topics.append(NewTopic(f"{topic_prefix}events-by-user", 2, 1))
        topics.append(
            NewTopic(f"{topic_prefix}items", 2, 1, topic_configs={"cleanup.policy": "compact"})
        )
        admin.create_topics(topics)
    finally:
        admin.close()
    events = _workload(users=3, per_user=5, seed=16)
    publish(kafka_bootstrap, topic_prefix, event_messages(events))
    worker = WorkerProcess(
        bootstrap=kafka_bootstrap,
        prefix=topic_prefix,
        store_url=store_url,
        log_path=tmp_path / "worker.log",
    ).start()
    try:
        deadline = time.monotonic() + 120
        while worker.alive() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not worker.alive(), "the worker kept retrying a publish that cannot succeed"
        assert worker.process is not None and worker.process.returncode != 0
        log = worker.log_path.read_text(errors="replace")
        assert "publish failed permanently" in log and "MessageSizeTooLarge" in log, log[-2000:]
        assert "retrying in" not in log.split("publish failed permanently")[0].split("publish")[-1]
    finally:
        worker.kill()
    lag = consumer_lag(
        kafka_bootstrap,
        f"{topic_prefix}group",
        [f"{topic_prefix}{t}" for t in ("clicks", "reviews", "queries")],
    )
    assert lag == len(events)  # nothing acknowledged: the events come again after a fix


def test_a_worker_without_its_topics_or_with_odd_partitions_refuses_to_start_in_one_line(
    kafka_bootstrap: str,
    kafka_admin: Any,
    cassandra_contact: tuple[str, int],
    keyspace: str,
    topic_prefix: str,
):
    """Faust would have the broker auto-create a missing topic with one partition and run
    on it; the worker checks first and names what `init` would fix."""
    import sys

    from kafka.admin import NewTopic

    host, port = cassandra_contact
    store_url = f"cassandra://{host}:{port}/{keyspace}"
    open_store(store_url, create_schema=True).close()

    def start() -> str:
        result = subprocess.run(
            [sys.executable, "-m", "interest_stream.streams.cli", "worker", "--encoder",
             "hashing", "--brokers", kafka_bootstrap, "--topic-prefix", topic_prefix,
             "--store", store_url],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        output = result.stdout + result.stderr
        assert result.returncode == 2 and "Traceback" not in output, output
        assert len(output.strip().splitlines()) == 1, output
        return output

    missing = start()
    assert f"topic {topic_prefix}clicks does not exist" in missing and "init" in missing
    assert not [t for t in kafka_admin.list_topics() if t.startswith(topic_prefix)]
    counts = {"clicks": 2, "reviews": 3, "queries": 2, "profile-updates": 2, "items": 2}
    counts["interest-stream-dlq"] = counts["events-by-user"] = 2
    kafka_admin.create_topics([NewTopic(topic_prefix + t, n, 1) for t, n in counts.items()])
    odd = start()
    assert "partition counts" in odd and f"{topic_prefix}reviews 3" in odd, odd
