"""The local servers of deploy/local answer like the real thing the pipeline relies on.

Needs `deploy/local/up` first; the fixtures fail (never skip) when a server is down.
"""

from __future__ import annotations

import math
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOCAL = ROOT / "deploy" / "local"
DIM = 384


def _unit(seed: int) -> list[float]:
    """A deterministic unit vector of DIM floats."""
    raw = [math.sin(seed * 7.0 + i * 0.37) + 0.05 * (i % (seed + 2)) for i in range(DIM)]
    norm = math.sqrt(sum(x * x for x in raw))
    return [x / norm for x in raw]


@pytest.mark.kafka
def test_kafka_produce_and_consume_roundtrip(kafka_bootstrap: str, topic_prefix: str) -> None:
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
    from kafka.admin import NewTopic

    topic = f"{topic_prefix}roundtrip"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    finally:
        admin.close()

    sent = {f"user-{i}".encode(): f'{{"n": {i}}}'.encode() for i in range(10)}
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", linger_ms=5)
    try:
        for key, value in sent.items():
            producer.send(topic, key=key, value=value)
        producer.flush(timeout=20)
    finally:
        producer.close()

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=f"{topic_prefix}group",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=20000,
    )
    got: dict[bytes, bytes] = {}
    try:
        for record in consumer:
            got[record.key] = record.value
            if len(got) == len(sent):
                break
        consumer.commit()
    finally:
        consumer.close()

    assert got == sent


@pytest.mark.cassandra
def test_cassandra_vector_table_and_sai_ann_query(cassandra_session: Any, keyspace: str) -> None:
    s = cassandra_session
    s.execute(
        f"CREATE TABLE {keyspace}.items (id text PRIMARY KEY, label text, v vector<float, {DIM}>)"
    )
    s.execute(
        f"CREATE CUSTOM INDEX items_v_ann ON {keyspace}.items (v) USING 'StorageAttachedIndex' "
        "WITH OPTIONS = {'similarity_function': 'cosine'}"
    )
    insert = s.prepare(f"INSERT INTO {keyspace}.items (id, label, v) VALUES (?, ?, ?)")
    vectors = {f"item-{i}": _unit(i) for i in range(8)}
    for item_id, vec in vectors.items():
        s.execute(insert, (item_id, f"label of {item_id}", vec))

    row = s.execute(f"SELECT id, label, v FROM {keyspace}.items WHERE id = %s", ("item-3",)).one()
    assert row.label == "label of item-3"
    assert len(row.v) == DIM
    assert (
        max(abs(a - b) for a, b in zip(row.v, vectors["item-3"], strict=True)) < 1e-6
    )  # float32 round trip

    # a query close to item-5 (a small nudge) finds item-5 first
    nudged = [x + 0.01 * y for x, y in zip(vectors["item-5"], _unit(99), strict=True)]
    ann = s.prepare(
        f"SELECT id, similarity_cosine(v, ?) AS score FROM {keyspace}.items "
        "ORDER BY v ANN OF ? LIMIT 3"
    )
    rows = list(s.execute(ann, (nudged, nudged)))
    assert rows[0].id == "item-5"
    assert len(rows) == 3
    assert rows[0].score >= rows[1].score >= rows[2].score


@pytest.mark.kafka
@pytest.mark.cassandra
def test_up_again_is_harmless_and_status_reports_running(
    kafka_bootstrap: str, cassandra_contact: Any
) -> None:
    env = dict(os.environ)
    up = subprocess.run([str(LOCAL / "up")], capture_output=True, text=True, timeout=120, env=env)
    assert up.returncode == 0, up.stdout + up.stderr
    assert "kafka: already running" in up.stdout
    assert "cassandra: already running" in up.stdout

    status = subprocess.run(
        [str(LOCAL / "status"), "kafka", "cassandra"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert status.returncode == 0, status.stdout + status.stderr
    assert "kafka: running, ready" in status.stdout
    assert "cassandra: running, ready" in status.stdout


@pytest.mark.cassandra
def test_concurrent_vector_writes_into_an_sai_indexed_table_all_succeed(
    cassandra_session: Any, keyspace: str
) -> None:
    """Regression: jvector's memtable graph allows only (JVM processors + 1) concurrent
    inserts (CASSANDRA-21644); deploy/local sizes concurrent_writes to match."""
    from cassandra.concurrent import execute_concurrent_with_args

    s = cassandra_session
    s.execute(
        f"CREATE TABLE {keyspace}.p (id text PRIMARY KEY, version bigint, v vector<float, {DIM}>)"
    )
    s.execute(
        f"CREATE CUSTOM INDEX p_v_ann ON {keyspace}.p (v) USING 'StorageAttachedIndex' "
        "WITH OPTIONS = {'similarity_function': 'cosine'}"
    )
    plain = s.prepare(f"INSERT INTO {keyspace}.p (id, version, v) VALUES (?, 0, ?)")
    lwt = s.prepare(f"UPDATE {keyspace}.p SET version = 1, v = ? WHERE id = ? IF version = 0")
    ids = [f"u{i}" for i in range(300)]
    results = execute_concurrent_with_args(
        s,
        plain,
        [(i, _unit(n)) for n, i in enumerate(ids)],
        concurrency=64,
        raise_on_first_error=False,
    )
    assert [r.result_or_exc for r in results if not r.success] == []
    results = execute_concurrent_with_args(
        s,
        lwt,
        [(_unit(n + 1), i) for n, i in enumerate(ids)],
        concurrency=64,
        raise_on_first_error=False,
    )
    assert [r.result_or_exc for r in results if not r.success] == []
    assert all(r.result_or_exc.one().applied for r in results)
    count = s.execute(f"SELECT count(*) FROM {keyspace}.p WHERE version = 1 ALLOW FILTERING")
    assert count.one()[0] == len(ids)


def test_up_fails_fast_and_readably_when_a_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "KAFKA_PORT": str(port), "LOCAL_SERVERS_HOME": str(tmp_path)}
        result = subprocess.run(
            [str(ROOT / "deploy/local/up"), "kafka"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode != 0
    assert f"port {port} (KAFKA_PORT)" in result.stdout + result.stderr
    assert "already in use" in result.stdout + result.stderr
    assert not list(tmp_path.glob("run/*/pid")), "a server was started anyway"


def _free_pair() -> int:
    """A port p with p and p + 1 free (Kafka's controller listens on KAFKA_PORT + 1)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        with socket.socket() as second:
            try:
                second.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise AssertionError("no two consecutive free ports")


@pytest.mark.kafka
def test_down_cleans_up_after_a_server_was_killed(tmp_path: Path) -> None:
    env = {**os.environ, "KAFKA_PORT": str(_free_pair()), "LOCAL_SERVERS_HOME": str(tmp_path)}

    def local(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(ROOT / "deploy/local" / args[0]), *args[1:]],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )

    try:
        assert local("up", "kafka").returncode == 0
        pid_file = tmp_path / "run" / "kafka" / "pid"
        pid = int(pid_file.read_text().strip())  # up records the pid of what it started
        os.kill(pid, 9)
        time.sleep(1)
        result = local("down", "kafka")
        assert result.returncode == 0, result.stdout + result.stderr
        assert not pid_file.exists()
        assert local("status", "kafka").returncode != 0
    finally:
        local("down", "--purge", "kafka")
