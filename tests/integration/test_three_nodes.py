"""The pipeline on three Kafka brokers and three Cassandra nodes (`deploy/local/up --nodes 3`):
replicated topics and keyspace, and one broker and one Cassandra node killed with SIGKILL
mid-stream and brought back. The final profiles must equal one clean embedded pass over the
same events: nothing lost, nothing counted twice.

Relies only on the public harness (WorkerProcess, oracle, assert_profiles_equal, publish)
and on `interest-stream init`, so it keeps its meaning whatever the worker does inside.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from interest_stream.streams.cli import main
from interest_stream.streams.demo import generate
from interest_stream.streams.errors import StoreError
from tests.integration.conftest_servers import Topology, local_script
from tests.integration.harness import (
    WorkerProcess,
    assert_profiles_equal,
    event_messages,
    oracle,
    publish,
    total_events,
    wait_until,
)

pytestmark = [pytest.mark.kafka, pytest.mark.cassandra, pytest.mark.slow]


def _workload(users: int, per_user: int, seed: int) -> list[dict[str, Any]]:
    events = generate(users=users, events_per_user=per_user, seed=seed, duplicates=0.03).events
    rng = random.Random(seed)  # out of order within windows of a few hundred events
    for start in range(0, len(events), 300):
        window = events[start : start + 300]
        rng.shuffle(window)
        events[start : start + 300] = window
    return events


def _applied(store_url: str) -> int:
    """Events applied so far, or -1 while the cluster cannot answer yet: for some seconds
    after a SIGKILL the other nodes still count the dead one in, and a LOCAL_QUORUM scan
    that picked it times out (the worker retries its own reads the same way)."""
    try:
        return total_events(store_url)
    except StoreError:
        return -1


def _java_hash(text: str) -> int:
    """Java's String.hashCode, as Kafka hashes a group id onto __consumer_offsets."""
    h = 0
    for char in text:
        h = (31 * h + ord(char)) & 0xFFFFFFFF
    return h


def _coordinator_broker(admin: Any, group: str) -> int:
    """The node id of the broker that coordinates `group` (leads its offsets partition)."""
    (offsets,) = admin.describe_topics(["__consumer_offsets"])
    partition = (_java_hash(group) & 0x7FFFFFFF) % len(offsets["partitions"])
    leaders = {p["partition_index"]: p["leader_id"] for p in offsets["partitions"]}
    return int(leaders[partition])


@pytest.fixture
def cluster(three_nodes: Topology) -> Iterator[dict[str, Any]]:
    from kafka import KafkaAdminClient

    prefix = f"t{uuid.uuid4().hex[:10]}-"
    keyspace = f"ks_{uuid.uuid4().hex[:12]}"
    env = three_nodes.env
    base = env["INTEREST_STREAM_STORE_URL"].rsplit("/", 1)[0]
    admin = KafkaAdminClient(bootstrap_servers=env["INTEREST_STREAM_BROKERS"])
    try:
        yield {
            "bootstrap": env["INTEREST_STREAM_BROKERS"],
            "prefix": prefix,
            "store": f"{base}/{keyspace}",
            "keyspace": keyspace,
            "admin": admin,
        }
        # best effort, when the topology outlives this module (else the fixture purges it)
        if not three_nodes.started_here:
            _drop(admin, prefix, f"{base}/{keyspace}")
    finally:
        admin.close()


def _drop(admin: Any, prefix: str, store_url: str) -> None:
    from interest_stream.store.cassandra import connect, parse_url

    mine = [t for t in admin.list_topics() if t.startswith(prefix)]
    if mine:
        admin.delete_topics(mine, timeout_ms=30_000)
    target = parse_url(store_url)
    cluster, session = connect(target)
    try:
        session.execute(f"DROP KEYSPACE IF EXISTS {target.keyspace}", timeout=60)
    finally:
        cluster.shutdown()


def _init_replicated(cluster: dict[str, Any]) -> None:
    """`interest-stream init` with replication 3 for topics and keyspace; checks the layout."""
    result = CliRunner().invoke(
        main,
        [
            "init", "--brokers", cluster["bootstrap"], "--store", cluster["store"],
            "--topic-prefix", cluster["prefix"], "--replication-factor", "3",
            "--keyspace-dc", "dc1=3", "--json",
        ],
        env={"INTEREST_STREAM_CASSANDRA_LOCAL_DC": "dc1"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert {t["replication"] for t in report["kafka"]["topics"]} == {3}
    replication = report["cassandra"]["replication"]
    assert replication["class"].endswith("NetworkTopologyStrategy") and int(replication["dc1"]) == 3
    from kafka.admin import ConfigResource, ConfigResourceType

    topic = cluster["prefix"] + "clicks"
    described = cluster["admin"].describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, topic, configs={"min.insync.replicas": None})],
        config_filter="all",
    )["topic"][topic]
    assert described["min.insync.replicas"]["value"] == "2"


def test_a_broker_and_a_cassandra_node_killed_mid_stream_lose_nothing(
    cluster: dict[str, Any], tmp_path: Path
) -> None:
    started = time.monotonic()

    def phase(what: str) -> None:
        print(f"[3 nodes] {time.monotonic() - started:6.1f} s  {what}", flush=True)

    _init_replicated(cluster)
    phase("topics and keyspace created with replication 3")
    events = _workload(users=60, per_user=50, seed=31)
    expected = oracle(events, tmp_path, time.time())
    want = sum(p.event_count for p in expected.values())
    messages = event_messages(events)
    third = len(messages) // 3  # before the kill, while two nodes are down, after
    publish(cluster["bootstrap"], cluster["prefix"], messages[:third])
    group = f"{cluster['prefix']}group"
    worker = WorkerProcess(
        bootstrap=cluster["bootstrap"],
        prefix=cluster["prefix"],
        store_url=cluster["store"],
        log_path=tmp_path / "worker.log",
        batch_size=64,
        group=group,
        env={"INTEREST_STREAM_CASSANDRA_LOCAL_DC": "dc1"},
    ).start()
    store = cluster["store"]
    killed: list[str] = []
    try:
        wait_until(lambda: _applied(store) > want // 6, 180, "first writes", worker.log_tail)
        # The broker that coordinates the worker's group (its offsets partition leader) and
        # the Cassandra node the clients contact first: the hardest single failures.
        broker = f"kafka-{_coordinator_broker(cluster['admin'], group)}"
        killed = [broker, "cassandra-1"]
        before_kill = _applied(store)
        result = local_script("kill", *killed)
        assert result.returncode == 0, result.stdout + result.stderr
        phase(f"killed {' and '.join(killed)} at {before_kill} of {want} events")
        status = local_script("status", "--nodes", "3", timeout_s=120)
        assert status.returncode != 0
        for name in killed:
            assert f"{name}: stopped: it died or was killed" in status.stdout, status.stdout
        publish(cluster["bootstrap"], cluster["prefix"], messages[third : 2 * third])
        # the survivors carry on: replication 3, min.insync.replicas 2, LOCAL_QUORUM
        wait_until(
            lambda: _applied(store) > before_kill + want // 10,
            180,
            f"progress with {' and '.join(killed)} down",
            worker.log_tail,
        )
        phase(f"progress without them: {_applied(store)} events")
        result = local_script("up", *killed)
        assert result.returncode == 0, result.stdout + result.stderr
        phase(f"{' and '.join(killed)} back at {_applied(store)} events")
        killed = []
        publish(cluster["bootstrap"], cluster["prefix"], messages[2 * third :])
        wait_until(lambda: _applied(store) >= want, 300, f"{want} events", worker.log_tail)
        phase("all events applied")
        assert worker.alive(), worker.log_tail()
    finally:
        worker.stop()
        if killed:  # a failed wait must not leave the topology short of a node
            local_script("up", *killed)
    assert_profiles_equal(expected, store)
    phase(f"{len(events)} events: profiles equal the oracle")
