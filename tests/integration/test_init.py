"""`interest-stream init` against the local servers: topics and schema created once, found the
second time, unusable layouts reported, unreachable servers one clear error."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from interest_stream.streams.admin import TopicSetupError, admin_client, init_cassandra, init_kafka
from interest_stream.streams.cli import main
from interest_stream.streams.errors import StoreError
from interest_stream.streams.settings import Settings, load_settings

NAMES = (
    "clicks",
    "reviews",
    "queries",
    "profile-updates",
    "items",
    "interest-stream-dlq",
    "events-by-user",
)
COMPACTED = ("profile-updates", "items")


@pytest.fixture
def kafka_settings(kafka_bootstrap: str, topic_prefix: str) -> Iterator[Settings]:
    settings = load_settings(brokers=kafka_bootstrap, topic_prefix=topic_prefix, partitions=3)
    yield settings
    client = admin_client(settings)
    try:
        ours = [t for t in client.list_topics() if t.startswith(topic_prefix)]
        if ours:
            client.delete_topics(ours)
    finally:
        client.close()


def _partitions(settings: Settings) -> dict[str, int]:
    """Partition counts as a plain consumer sees them, not as init reported them."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(bootstrap_servers=settings.brokers)
    try:
        return {n: len(consumer.partitions_for_topic(settings.topic(n)) or ()) for n in NAMES}
    finally:
        consumer.close()


@pytest.mark.kafka
def test_init_kafka_twice_creates_then_finds_the_topics(kafka_settings: Settings) -> None:
    first = init_kafka(kafka_settings)
    assert [t.name for t in first.topics] == [kafka_settings.topic(n) for n in NAMES]
    assert {t.status for t in first.topics} == {"created"} and first.problems == ()
    second = init_kafka(kafka_settings)
    assert {t.status for t in second.topics} == {"exists"} and second.problems == ()
    assert _partitions(kafka_settings) == dict.fromkeys(NAMES, 3)
    policies = {t.name: t.cleanup_policy for t in second.topics}
    for name in COMPACTED:
        assert policies.pop(kafka_settings.topic(name)) == "compact"
    assert set(policies.values()) == {"delete"}


@pytest.mark.kafka
def test_an_input_topic_with_another_partition_count_is_reported(kafka_settings: Settings) -> None:
    client = admin_client(kafka_settings)
    try:
        client.create_topics(
            {kafka_settings.topic("reviews"): {"num_partitions": 2, "replication_factor": 1}}
        )
    finally:
        client.close()
    report = init_kafka(kafka_settings)
    assert [t.status for t in report.topics].count("created") == len(NAMES) - 1
    (problem,) = report.problems
    assert f"{kafka_settings.topic('reviews')} 2" in problem and "co-partitioned" in problem


def _create_updates_topic(settings: Settings, configs: dict[str, str]) -> None:
    """profile-updates made by hand before `init`, 3 partitions, with these configs."""
    client = admin_client(settings)
    try:
        spec = {"num_partitions": 3, "replication_factor": 1, "configs": configs}
        client.create_topics({settings.topic("profile-updates"): spec})
    finally:
        client.close()


@pytest.mark.kafka
def test_a_non_compacted_update_topic_is_reported(kafka_settings: Settings) -> None:
    _create_updates_topic(kafka_settings, {})
    (problem,) = init_kafka(kafka_settings).problems
    assert "cleanup.policy=delete, expected compact" in problem


@pytest.mark.kafka
def test_an_output_topic_that_refuses_the_workers_producer_batches_is_reported(
    kafka_settings: Settings,
) -> None:
    """Each update fits under this limit (about 16 KiB), but the worker's producer batches
    of up to PRODUCER_BATCH_BYTES would not: every publish would fail for good."""
    _create_updates_topic(
        kafka_settings, {"cleanup.policy": "compact", "max.message.bytes": "100000"}
    )
    (problem,) = init_kafka(kafka_settings).problems
    name = kafka_settings.topic("profile-updates")
    assert f"{name} has max.message.bytes=100000" in problem and "262144" in problem


def test_an_unreachable_broker_is_one_clear_error() -> None:
    settings = load_settings(brokers="127.0.0.1:1")
    with pytest.raises(TopicSetupError, match=r"cannot reach Kafka at 127\.0\.0\.1:1"):
        init_kafka(settings, timeout_s=2)


@pytest.mark.cassandra
def test_init_cassandra_twice_creates_then_finds_the_schema(
    cassandra_contact: tuple[str, int], keyspace: str
) -> None:
    host, port = cassandra_contact
    settings = load_settings(store_url=f"cassandra://{host}:{port}/{keyspace}")
    first = init_cassandra(settings)
    objects = [
        f"{keyspace}.profiles",
        f"{keyspace}.fences",
        f"{keyspace}.erasures",
        f"{keyspace}.settings",
        f"{keyspace}.profile_domains",
        f"{keyspace}.profile_ann",
        f"{keyspace}.profile_ann_long",
        f"{keyspace}.profile_ann_short",
        f"{keyspace}.items",
        f"{keyspace}.items_ann",
    ]
    assert first.created == tuple(objects) and first.existing == (keyspace,)
    second = init_cassandra(settings)
    assert second.created == () and second.existing == (keyspace, *objects)
    assert second.dim == 384 and second.replication["class"].endswith("SimpleStrategy")

    from cassandra.cluster import Cluster

    cluster = Cluster([host], port=port, protocol_version=4)
    try:
        cluster.connect().shutdown()
        tables = cluster.metadata.keyspaces[keyspace].tables
        assert sorted(tables) == [
            "erasures",
            "fences",
            "items",
            "profile_ann",
            "profile_domains",
            "profiles",
            "settings",
        ]
        assert tables["items"].columns["vector"].cql_type == "vector<float, 384>"
        assert tables["profiles"].columns["long"].cql_type == "vector<float, 384>"
        assert tables["profiles"].partition_key[0].name == "user_id"
        assert [c.name for c in tables["profile_domains"].primary_key] == ["user_id", "domain"]
        assert tables["profile_ann"].columns["short"].cql_type == "vector<float, 384>"
        for name in ("profile_ann_long", "profile_ann_short"):
            index = tables["profile_ann"].indexes[name]
            assert index.index_options["class_name"] == "StorageAttachedIndex"
            # Unit vectors: dot product ranks as cosine, at half the insert cost.
            assert index.index_options["similarity_function"] == "dot_product"
    finally:
        cluster.shutdown()


@pytest.mark.cassandra
def test_init_creates_a_missing_keyspace_with_the_given_replication(
    cassandra_contact: tuple[str, int], keyspace: str
) -> None:
    host, port = cassandra_contact
    fresh = f"{keyspace}_new"
    settings = load_settings(store_url=f"cassandra://{host}:{port}/{fresh}")
    try:
        report = init_cassandra(
            settings, replication={"class": "SimpleStrategy", "replication_factor": 1}
        )
        assert report.created[0] == fresh and report.existing == ()
        assert report.replication["replication_factor"] == "1"
    finally:
        from cassandra.cluster import Cluster

        cluster = Cluster([host], port=port, protocol_version=4)
        cluster.connect().execute(f"DROP KEYSPACE IF EXISTS {fresh}", timeout=60)
        cluster.shutdown()


def test_an_unreachable_cassandra_is_one_clear_error() -> None:
    with pytest.raises(StoreError, match=r"cannot connect to Cassandra at 127\.0\.0\.1:1/ks"):
        init_cassandra(load_settings(store_url="cassandra://127.0.0.1:1/ks"))


@pytest.mark.kafka
@pytest.mark.cassandra
def test_the_init_command_prints_what_it_created_then_found(
    kafka_settings: Settings, cassandra_contact: tuple[str, int], keyspace: str
) -> None:
    host, port = cassandra_contact
    args = [
        "init",
        "--brokers",
        kafka_settings.brokers,
        "--store",
        f"cassandra://{host}:{port}/{keyspace}",
        "--partitions",
        "2",
        "--topic-prefix",
        kafka_settings.topic_prefix,
    ]
    first = CliRunner().invoke(main, [*args, "--json"], catch_exceptions=False)
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)  # stderr may carry the server's SAI warnings
    assert {t["partitions"] for t in report["kafka"]["topics"]} == {2}
    assert {t["status"] for t in report["kafka"]["topics"]} == {"created"}
    assert f"{keyspace}.profiles" in report["cassandra"]["created"]
    again = CliRunner().invoke(main, args, catch_exceptions=False)
    assert again.exit_code == 0, again.output
    assert f"topic {kafka_settings.topic('clicks')}: exists (2 partitions" in again.output
    assert f"cassandra {keyspace}.profiles: exists" in again.output


def test_the_init_command_turns_an_unreachable_broker_into_one_line() -> None:
    result = CliRunner().invoke(
        main, ["init", "--brokers", "127.0.0.1:1", "--no-cassandra", "--timeout", "2"]
    )
    assert result.exit_code == 2
    assert "cannot reach Kafka at 127.0.0.1:1" in result.output
    assert "Traceback" not in result.output
