"""Every identity of the secure servers tries what its duty does not need, and is refused.

The identities are the ones `deploy/local/up --secure` creates, with the grants `init`
gave them on the pipeline's topics and tables (secure_harness.py); the README's "Least
privilege" table states the same. Through the commands, a refusal is one `error:` line;
through the bare clients (deleting a topic, reading the DLQ, CQL DDL, a GRANT), it is the
server's authorization error, one line too. Each case first names what it tries, so a
permission granted by mistake fails the case that needs it refused.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.integration.conftest_servers import identity_env
from tests.integration.secure_harness import (
    SecurePipeline,
    cli,
    kafka_client_options,
    one_line_error,
)

pytestmark = [pytest.mark.kafka, pytest.mark.cassandra]

EVENT = {"event_id": "w-1", "user_id": "home-cook", "ts": 0, "type": "click",
         "text": "An attempt to write"}  # fmt: skip


# ------------------------------------------------------------------------- commands
COMMANDS = [
    # (identity, what it tries, command, words of the refusal)
    # refused at the first statement: the fence it would claim (SELECT, then MODIFY)
    ("reader", "write profiles", ("run", "-", "--encoder", "hashing"), "no SELECT permission"),
    ("reader", "create the schema", ("init", "--no-kafka"), "no CREATE permission"),
    ("reader", "publish events", ("publish", "EVENTS"), "may not see it"),
    ("reader", "erase a user", ("forget", "home-cook"), "may not see it"),
    (
        "reader",
        "join the worker's group",
        ("watch", "--group", "WORKER_GROUP", "--max", "1", "--timeout", "20"),
        "GroupAuthorizationFailed",
    ),
    ("worker", "run init (topics, configs)", ("init", "--no-cassandra"), "Authorization"),
    ("worker", "create the schema", ("init", "--no-kafka"), "no CREATE permission"),
    (
        "worker",
        "read profile-updates",
        ("watch", "--max", "1", "--timeout", "10"),
        "TopicAuthorizationFailed",
    ),
    ("worker", "publish events", ("publish", "EVENTS"), "AuthorizationFailed"),
    (
        "eraser",
        "read profile-updates",
        ("watch", "--max", "1", "--timeout", "10"),
        "TopicAuthorizationFailed",
    ),
    ("eraser", "publish events", ("publish", "EVENTS"), "AuthorizationFailed"),
    ("eraser", "create the schema", ("init", "--no-kafka"), "no CREATE permission"),
    (
        "producer",
        "read profile-updates",
        ("watch", "--max", "1", "--timeout", "10"),
        "may not see",
    ),
    ("producer", "run init (topics, configs)", ("init", "--no-cassandra"), "Authorization"),
    (
        "init",
        "read profile-updates",
        ("watch", "--max", "1", "--timeout", "10"),
        "TopicAuthorizationFailed",
    ),
    ("init", "publish events", ("publish", "EVENTS"), "AuthorizationFailed"),
]


@pytest.mark.parametrize(
    ("identity", "what", "command", "refusal"),
    COMMANDS,
    ids=[f"{identity}: {what}" for identity, what, _, _ in COMMANDS],
)
def test_a_command_outside_the_identitys_duty_is_refused_in_one_line(
    secure_pipeline: SecurePipeline,
    identity: str,
    what: str,
    command: tuple[str, ...],
    refusal: str,
):
    secure, tmp = secure_pipeline.secure, secure_pipeline.tmp
    events = tmp / "privilege-events.jsonl"
    events.write_text(json.dumps({**EVENT, "ts": int(time.time() * 1000)}) + "\n")
    named = {"EVENTS": str(events), "WORKER_GROUP": f"{secure_pipeline.prefix}group"}
    args = [named.get(arg, arg) for arg in command]
    stdin = json.dumps({**EVENT, "ts": int(time.time() * 1000)}) + "\n"
    result = cli(secure, identity, *args, env=secure_pipeline.env, stdin=stdin, cwd=tmp)
    error = one_line_error(result)
    assert refusal in error, error


def test_nothing_refused_above_was_written(secure_pipeline: SecurePipeline):
    from tests.integration.secure_harness import USERS, event_counts

    assert event_counts(secure_pipeline.settings("reader")) == USERS


# ----------------------------------------------------------------- bare Kafka clients
def _kafka(secure: dict[str, str], identity: str) -> dict[str, Any]:
    env = identity_env(identity)
    return kafka_client_options(
        secure, env["INTEREST_STREAM_KAFKA_USERNAME"], env["INTEREST_STREAM_KAFKA_PASSWORD"]
    )


def _delete_topic(secure: dict[str, str], identity: str, topic: str) -> None:
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(**_kafka(secure, identity))
    try:
        response = admin.delete_topics([topic], timeout_ms=10_000)
        _raise_kafka_errors(response)
    finally:
        admin.close()


def _alter_retention(secure: dict[str, str], identity: str, topic: str) -> None:
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

    admin = KafkaAdminClient(**_kafka(secure, identity))
    try:
        resource = ConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.ms": "1"})
        result = admin.alter_configs([resource], incremental=True, raise_on_unknown=False)
        outcome = result["topic"][topic]
        if outcome != "OK":
            raise PermissionError(outcome)
    finally:
        admin.close()


def _create_topic(secure: dict[str, str], identity: str, topic: str) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(**_kafka(secure, identity))
    try:
        admin.create_topics([NewTopic(topic + "-new", 1, 1)], timeout_ms=10_000)
    finally:
        admin.close()


def _read(secure: dict[str, str], identity: str, topic: str, group: str | None = None) -> None:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        **_kafka(secure, identity),
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        consumer_timeout_ms=5_000,
    )
    try:
        if group is None:
            consumer.assign([TopicPartition(topic, 0)])
            consumer.poll(timeout_ms=5_000)
            consumer.seek_to_beginning()
            consumer.position(TopicPartition(topic, 0))
        else:
            consumer.subscribe([topic])
            consumer.poll(timeout_ms=5_000)
            consumer.commit({TopicPartition(topic, 0): _offset(0)})
    finally:
        consumer.close()


def _offset(value: int) -> Any:
    from kafka.structs import OffsetAndMetadata

    return OffsetAndMetadata(value, "", -1)


def _write(secure: dict[str, str], identity: str, topic: str) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(**_kafka(secure, identity), acks="all", max_block_ms=10_000)
    try:
        producer.send(topic, key=b"home-cook", value=b"{}").get(timeout=15)
    finally:
        producer.close()


def _raise_kafka_errors(response: Any) -> None:
    from kafka.errors import for_code

    for result in getattr(response, "topic_error_codes", None) or getattr(
        response, "responses", []
    ):
        code = result[1]
        if code:
            raise for_code(code)()


KafkaAction = Callable[[dict[str, str], str, str], None]
KAFKA_CASES: list[tuple[str, str, KafkaAction, str]] = [
    # (identity, action on topic, function, topic without prefix)
    ("worker", "delete a topic", _delete_topic, "profile-updates"),
    ("worker", "shorten the retention", _alter_retention, "profile-updates"),
    ("worker", "create a topic", _create_topic, "clicks"),
    ("worker", "write an input topic", _write, "clicks"),
    ("worker", "write items", _write, "items"),
    ("worker", "read the DLQ", _read, "interest-stream-dlq"),
    ("reader", "read an input topic", _read, "clicks"),
    ("reader", "read the DLQ", _read, "interest-stream-dlq"),
    ("reader", "write profile-updates", _write, "profile-updates"),
    ("reader", "delete a topic", _delete_topic, "profile-updates"),
    ("reader", "shorten the retention", _alter_retention, "profile-updates"),
    ("eraser", "read an input topic", _read, "clicks"),
    ("eraser", "write an input topic", _write, "clicks"),
    ("eraser", "delete a topic", _delete_topic, "profile-updates"),
    ("producer", "read an input topic", _read, "clicks"),
    ("producer", "write profile-updates", _write, "profile-updates"),
    ("producer", "write the DLQ", _write, "interest-stream-dlq"),
    ("producer", "delete a topic", _delete_topic, "clicks"),
    ("init", "read an input topic", _read, "clicks"),
]


@pytest.mark.parametrize(
    ("identity", "what", "action", "topic"),
    KAFKA_CASES,
    ids=[f"{identity}: {what}" for identity, what, _, _ in KAFKA_CASES],
)
def test_a_kafka_action_outside_the_identitys_duty_is_refused(
    secure_pipeline: SecurePipeline, identity: str, what: str, action: KafkaAction, topic: str
):
    from kafka.errors import KafkaError

    with pytest.raises((KafkaError, PermissionError)) as refused:
        action(secure_pipeline.secure, identity, secure_pipeline.prefix + topic)
    message = f"{type(refused.value).__name__}: {refused.value}"
    assert "Authorization" in message or "authorized" in message.lower(), message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("identity", "group"),
    [("reader", "WORKER_GROUP"), ("worker", "profile-reader-x"), ("eraser", "any-group")],
)
def test_a_consumer_group_outside_the_identitys_own_is_refused(
    secure_pipeline: SecurePipeline, identity: str, group: str
):
    """Joining another group or committing its offsets would let one consumer make
    another skip events; the reader's topic is readable by it, only the group is not."""
    from kafka.errors import GroupAuthorizationFailedError, TopicAuthorizationFailedError

    topic = secure_pipeline.prefix + ("profile-updates" if identity == "reader" else "clicks")
    group = group.replace("WORKER_GROUP", f"{secure_pipeline.prefix}group")
    with pytest.raises((GroupAuthorizationFailedError, TopicAuthorizationFailedError)) as refused:
        _read(secure_pipeline.secure, identity, topic, group=group)
    if identity == "reader":
        assert isinstance(refused.value, GroupAuthorizationFailedError)


# -------------------------------------------------------------------- bare CQL sessions
CQL_CASES = [
    # (identity, what, statement: {ks} is the keyspace)
    ("worker", "drop a table", "DROP TABLE {ks}.profiles"),
    ("worker", "alter a table", "ALTER TABLE {ks}.profiles WITH comment = 'x'"),
    ("worker", "create a table", "CREATE TABLE {ks}.extra (k text PRIMARY KEY)"),
    ("worker", "drop the keyspace", "DROP KEYSPACE {ks}"),
    (
        "worker",
        "grant itself more",
        "GRANT MODIFY ON TABLE {ks}.erasures TO interest_stream_worker",
    ),
    ("worker", "write erasures", "INSERT INTO {ks}.erasures (user_id, reason) VALUES ('u', 'x')"),
    ("worker", "delete erasures", "DELETE FROM {ks}.erasures WHERE user_id = 'u'"),
    ("reader", "read erasures", "SELECT * FROM {ks}.erasures"),
    ("reader", "read fences", "SELECT * FROM {ks}.fences"),
    ("reader", "write profiles", "DELETE FROM {ks}.profiles WHERE user_id = 'home-cook'"),
    ("reader", "write items", "INSERT INTO {ks}.items (item_id, text) VALUES ('i', 't')"),
    ("reader", "drop a table", "DROP TABLE {ks}.profiles"),
    ("eraser", "read items", "SELECT * FROM {ks}.items"),
    ("eraser", "write items", "INSERT INTO {ks}.items (item_id, text) VALUES ('i', 't')"),
    ("eraser", "drop a table", "DROP TABLE {ks}.erasures"),
]


@pytest.mark.parametrize(
    ("identity", "what", "statement"),
    CQL_CASES,
    ids=[f"{identity}: {what}" for identity, what, _ in CQL_CASES],
)
def test_a_cql_statement_outside_the_identitys_duty_is_refused(
    secure_pipeline: SecurePipeline, identity: str, what: str, statement: str
):
    from cassandra import Unauthorized

    from interest_stream.store.cassandra import connect, parse_url

    settings = secure_pipeline.settings(identity)
    target = parse_url(settings.store_url)
    cluster, session = connect(target, settings.cassandra_options())
    try:
        with pytest.raises(Unauthorized) as refused:
            session.execute(statement.format(ks=secure_pipeline.keyspace))
    finally:
        cluster.shutdown()
    assert "\n" not in str(refused.value)
    assert identity_env(identity)["INTEREST_STREAM_CASSANDRA_USERNAME"] in str(refused.value)
