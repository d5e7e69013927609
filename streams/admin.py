"""Setting up the servers before the first worker starts: Kafka topics and the Cassandra schema.

`init_kafka` creates the input topics (clicks, reviews, queries: equal partition counts,
since the worker consumes them co-partitioned by user), the compacted `profile-updates`
topic and the DLQ; `init_cassandra` applies schemas/profiles.cql. Both are idempotent: what
exists is left alone and reported, and what exists in a shape the pipeline cannot use (input
topics with other partition counts, an update topic that is not compacted) is reported as a
problem rather than altered, because fixing it loses data or moves keys between partitions.
`interest-stream init` is the command-line face of this module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from interest_stream.schemas.events import INPUT_TOPICS
from interest_stream.store.base import ProfileStore
from interest_stream.store.cassandra import LOCAL_REPLICATION, SchemaReport
from interest_stream.streams.connection import PRODUCER_BATCH_BYTES, KafkaConnection
from interest_stream.streams.core import pauses as points
from interest_stream.streams.core.pauses import PausePoints
from interest_stream.streams.errors import (
    ConfigurationError,
    InterestStreamError,
    MissingExtraError,
)
from interest_stream.streams.settings import Settings

COMPACTED = {"cleanup.policy": "compact"}


class TopicSetupError(InterestStreamError):
    """Kafka topics cannot be checked or created (broker unreachable, refused, not allowed)."""


@dataclass(frozen=True)
class TopicReport:
    """One topic as init found or created it."""

    name: str
    partitions: int
    replication: int
    cleanup_policy: str
    status: Literal["created", "exists"]
    max_message_bytes: int | None = None


@dataclass(frozen=True)
class KafkaInitReport:
    """The topics of one `init_kafka` run; `problems` are layouts the worker cannot use."""

    brokers: str
    topics: tuple[TopicReport, ...]
    problems: tuple[str, ...] = field(default=())
    configured: tuple[str, ...] = field(default=())
    """Configs init set on an existing topic (the erasure bounds of profile-updates)."""
    grants: tuple[str, ...] = field(default=())
    """The ACLs granted to the identities the settings name."""


def topic_plan(settings: Settings, partitions: int | None = None) -> dict[str, dict[str, Any]]:
    """Every topic the pipeline uses (prefixed names), as kafka-python create_topics specs."""
    count = partitions or settings.partitions
    if count < 1:
        raise ConfigurationError(f"partitions must be at least 1, got {count}")
    spec = {"num_partitions": count, "replication_factor": settings.replication_factor}
    # With 3 or more replicas, an acknowledged write (acks=all) is on at least two of them,
    # whatever the brokers' default: losing one broker then loses nothing.
    durable = {"min.insync.replicas": "2"} if settings.replication_factor >= 3 else {}
    plan = {settings.topic(name): {**spec, "configs": dict(durable)} for name in INPUT_TOPICS}
    # Compacted: the topic keeps the latest update per user, and an erased user's
    # tombstone removes it.
    compacted = {**COMPACTED, **durable}
    updates = {**compacted, **erasure_bounds(settings)}
    plan[settings.topic(settings.updates_topic)] = {**spec, "configs": updates}
    plan[settings.topic(settings.items_topic)] = {**spec, "configs": dict(compacted)}
    plan[settings.topic(settings.dlq_topic)] = {**spec, "configs": dict(durable)}
    # Events forwarded to their user's partition (streams/core/routing.py): co-partitioned
    # with the inputs, kept like them.
    plan[settings.topic(settings.repartition_topic)] = {**spec, "configs": dict(durable)}
    return plan


def erasure_bounds(settings: Settings) -> dict[str, str]:
    """The profile-updates configs that bound how long an erased user's earlier updates
    stay on the brokers' disks: compaction is due at most `max.compaction.lag.ms` after a
    record is written, and since the active segment is never compacted, segments roll at
    least as often; the tombstone itself is removed `delete.retention.ms` after that."""
    lag_ms = str(round(settings.updates_max_compaction_lag_s * 1000))
    return {
        "max.compaction.lag.ms": lag_ms,
        "segment.ms": lag_ms,
        "delete.retention.ms": str(round(settings.updates_delete_retention_s * 1000)),
    }


def admin_client(settings: Settings, *, timeout_s: float = 15.0) -> Any:
    """A KafkaAdminClient with the configured security (TLS, SASL/SCRAM)."""
    try:
        from kafka.admin import KafkaAdminClient
        from kafka.errors import KafkaError
    except ImportError as exc:
        raise MissingExtraError("kafka-python", "kafka") from exc
    from interest_stream.streams.kafka.clients import security_options, unreachable

    options = security_options(settings)
    try:
        return KafkaAdminClient(
            bootstrap_servers=KafkaConnection.from_settings(settings).servers(),
            client_id="interest-stream-init",
            request_timeout_ms=int(timeout_s * 1000),
            bootstrap_timeout_ms=int(timeout_s * 1000),
            **options,
        )
    except KafkaError as exc:
        # the broker's reason when it refuses us (credentials, TLS), as publish and watch say it
        raise TopicSetupError(str(unreachable(settings, exc))) from exc


def _create_missing(client: Any, plan: Mapping[str, dict[str, Any]], timeout_s: float) -> set[str]:
    from kafka.errors import TopicAlreadyExistsError

    existing = set(client.list_topics())
    missing = {name: spec for name, spec in plan.items() if name not in existing}
    if not missing:
        return set()
    response = client.create_topics(missing, timeout_ms=int(timeout_s * 1000), raise_errors=False)
    created: set[str] = set()
    for result in response["topics"]:
        if result["error_code"] == 0:
            created.add(result["name"])
        elif result["error_code"] != TopicAlreadyExistsError.errno:  # a concurrent init won
            raise TopicSetupError(
                f"cannot create topic {result['name']}: error {result['error_code']}"
                f" {result['error_message'] or ''}".rstrip()
            )
    client.wait_for_topics(sorted(created), timeout_ms=int(timeout_s * 1000))
    return created


TOPIC_CONFIGS = ("cleanup.policy", "max.message.bytes")


def _topic_configs(
    client: Any, settings: Settings, names: list[str]
) -> dict[str, dict[str, str | None]]:
    """The values of TOPIC_CONFIGS of each topic (None where the broker gave none)."""
    from kafka.admin import ConfigResource, ConfigResourceType

    resources = [
        ConfigResource(ConfigResourceType.TOPIC, name, configs=dict.fromkeys(TOPIC_CONFIGS))
        for name in names
    ]
    # "all", not the default "modified": a topic on the broker default has no modified value.
    described = client.describe_configs(resources, config_filter="all")["topic"]
    for name in names:
        _require_configs(settings, name, described.get(name))
    return {
        name: {key: described[name].get(key, {}).get("value") for key in TOPIC_CONFIGS}
        for name in names
    }


def _number(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None


def _require_configs(settings: Settings, name: str, configs: Mapping[str, Any] | None) -> None:
    """kafka-python drops DescribeConfigs' per-topic errors: a topic described with no
    config at all (every topic has them) was refused, which must not read as defaults."""
    if not configs:
        user = settings.kafka_username
        who = f"user {user!r}" if user else "this client"
        raise TopicSetupError(
            f"Kafka returned no configs of topic {name}: {who} may not DESCRIBE_CONFIGS it"
            " (TopicAuthorizationFailed): run init with the administering identity"
        )


def init_kafka(
    settings: Settings, *, partitions: int | None = None, timeout_s: float = 15.0
) -> KafkaInitReport:
    """Create the pipeline's topics that are missing and report the layout of all of them."""
    from kafka.errors import KafkaError

    from interest_stream.streams.grants import grant_kafka

    plan = topic_plan(settings, partitions)
    client = admin_client(settings, timeout_s=timeout_s)
    try:
        created = _create_missing(client, plan, timeout_s)
        described = {t["name"]: t for t in client.describe_topics(list(plan))}
        configs = _topic_configs(client, settings, list(plan))
        configured = _set_erasure_bounds(client, settings)
        grants = grant_kafka(settings, client)
    except KafkaError as exc:
        raise TopicSetupError(f"Kafka at {settings.brokers}: {exc}") from exc
    finally:
        client.close()
    topics = []
    for name in plan:
        info = described.get(name)
        if info is None or info.get("error_code"):
            raise TopicSetupError(f"topic {name} is not visible on {settings.brokers} after init")
        parts = info["partitions"]
        topics.append(
            TopicReport(
                name=name,
                partitions=len(parts),
                replication=len(parts[0]["replica_nodes"]) if parts else 0,
                cleanup_policy=configs[name].get("cleanup.policy") or "delete",
                status="created" if name in created else "exists",
                max_message_bytes=_number(configs[name].get("max.message.bytes")),
            )
        )
    return KafkaInitReport(
        settings.brokers,
        tuple(topics),
        _layout_problems(settings, topics, plan),
        configured,
        tuple(str(grant) for grant in grants),
    )


def _set_erasure_bounds(client: Any, settings: Settings) -> tuple[str, ...]:
    """Set the erasure bounds on profile-updates where they differ (a topic made before
    them, or with other settings): changing them moves no data, so init may."""
    from kafka.admin import ConfigResource, ConfigResourceType

    name = settings.topic(settings.updates_topic)
    wanted = erasure_bounds(settings)
    resource = ConfigResource(ConfigResourceType.TOPIC, name, configs=dict.fromkeys(wanted))
    found = client.describe_configs([resource], config_filter="all")["topic"].get(name)
    _require_configs(settings, name, found)
    assert found is not None
    changed = {
        key: value for key, value in wanted.items() if found.get(key, {}).get("value") != value
    }
    if not changed:
        return ()
    update = ConfigResource(ConfigResourceType.TOPIC, name, configs=changed)
    result = client.alter_configs([update], incremental=True, raise_on_unknown=False)
    result = result.get("topic", {}).get(name)
    if result != "OK":  # kafka-python: "OK" or the error as text
        raise TopicSetupError(f"cannot set {', '.join(changed)} on {name}: {result}")
    return tuple(f"{name}: {key}={value}" for key, value in changed.items())


def _layout_problems(
    settings: Settings, topics: list[TopicReport], plan: Mapping[str, dict[str, Any]]
) -> tuple[str, ...]:
    problems = []
    inputs = {settings.topic(name) for name in (*INPUT_TOPICS, settings.repartition_topic)}
    counts = {t.name: t.partitions for t in topics if t.name in inputs}
    wanted = next(iter(plan.values()))["num_partitions"]
    if any(count != wanted for count in counts.values()):
        layout = ", ".join(f"{name} {count}" for name, count in counts.items())
        problems.append(
            f"input topics have partition counts {layout}, expected {wanted} each: the worker"
            " joins them co-partitioned by user, so all three need the same count (recreate"
            " the odd ones, or pass --partitions to match the existing ones)"
        )
    updates = settings.topic(settings.updates_topic)
    # The topics the worker's producer writes, in batches of up to PRODUCER_BATCH_BYTES.
    written = {settings.topic(n) for n in (settings.updates_topic, settings.dlq_topic)}
    written.add(settings.topic(settings.repartition_topic))
    for topic in topics:
        if topic.name == updates and topic.cleanup_policy != "compact":
            problems.append(
                f"{updates} has cleanup.policy={topic.cleanup_policy}, expected compact: set it"
                f" with kafka-configs --alter --add-config cleanup.policy=compact"
            )
        limit = topic.max_message_bytes
        if topic.name in written and limit is not None and limit < PRODUCER_BATCH_BYTES:
            problems.append(
                f"{topic.name} has max.message.bytes={limit}, below the worker's producer"
                f" batches ({PRODUCER_BATCH_BYTES} bytes): its publishes would be refused; set"
                f" it with kafka-configs --alter --add-config"
                f" max.message.bytes={PRODUCER_BATCH_BYTES}"
            )
    return tuple(problems)


def init_cassandra(
    settings: Settings,
    *,
    replication: Mapping[str, str | int] | None = None,
    dim: int | None = None,
) -> SchemaReport:
    """Apply schemas/profiles.cql to the keyspace of `settings.store_url`.

    `replication` is used only when the keyspace does not exist yet. The default,
    SimpleStrategy with one replica, suits a single local node; in production pass
    NetworkTopologyStrategy with a factor per data centre, e.g.
    {"class": "NetworkTopologyStrategy", "dc1": 3}. `dim` is the encoder's dimension
    (default 384, all-MiniLM-L6-v2).
    """
    from interest_stream.store.cassandra import DEFAULT_DIM, connect, ensure_schema, parse_url

    if not settings.store_url.startswith("cassandra://"):
        raise ConfigurationError(
            f"store URL {settings.store_url!r} is not a cassandra:// URL; pass --store"
            " cassandra://host:9042/keyspace or set INTEREST_STREAM_STORE_URL"
        )
    target = parse_url(settings.store_url)
    options = settings.cassandra_options()
    cluster, session = connect(target, options)
    try:
        schema = ensure_schema(
            cluster,
            session,
            target.keyspace,
            replication=replication or LOCAL_REPLICATION,
            dim=dim or DEFAULT_DIM,
            ann_index_options=dict(options.ann_index_options),
            ann_horizons=options.ann_horizons,
        )
    finally:
        cluster.shutdown()
    return schema


def grant_cassandra_roles(settings: Settings) -> tuple[str, ...]:
    """GRANT the roles the settings name their tables in the store's keyspace (after
    `init_cassandra`: the tables must exist), as the identity of the settings."""
    from interest_stream.store.cassandra import connect, parse_url
    from interest_stream.streams.grants import cassandra_grants, grant_cassandra

    target = parse_url(settings.store_url)
    if not cassandra_grants(settings, target.keyspace):
        return ()
    cluster, session = connect(target, settings.cassandra_options())
    try:
        return tuple(str(g) for g in grant_cassandra(settings, session, target.keyspace))
    finally:
        cluster.shutdown()


def replication_options(
    factor: int | None = None, datacenters: Mapping[str, int] | None = None
) -> dict[str, str | int]:
    """Replication from CLI flags: a factor per data centre wins over a simple factor."""
    if datacenters:
        return {"class": "NetworkTopologyStrategy", **datacenters}
    return {"class": "SimpleStrategy", "replication_factor": factor or 1}


@dataclass(frozen=True)
class Erasure:
    """What `forget` did for one user; `behind`: records from before the erasure the
    workers had not committed when the tombstone went out (0: every update of them was
    on the topic before it)."""

    user_id: str
    had_profile: bool
    fence: str
    tombstone: bool
    behind: int = 0


def forget_users(
    settings: Settings,
    store: ProfileStore,
    user_ids: Sequence[str],
    *,
    reason: str,
    at: float,
    with_kafka: bool = True,
    wait_s: float = 60.0,
    pauses: PausePoints | None = None,
) -> list[Erasure]:
    """Erase each user's profile and everything derived from it, record the erasure, and
    announce it (a tombstone on profile-updates, once the workers have committed every
    record from before the erasure: see streams/kafka/erasure.py). The store fences out the
    worker that owns the user's partition, so its cached copy is read again before it
    writes, and the erasure record makes it drop the user's events from before the erasure
    (replays, late ones): by their offsets in the input topics, read right after the
    erasure; without Kafka, by their time (before `at`)."""
    from interest_stream.store.base import ALL_FENCES, partition_fence

    fences: dict[str, str] = {}
    if with_kafka:
        from interest_stream.streams.core.routing import partition_of
        from interest_stream.streams.kafka.erasure import input_partitions

        count = input_partitions(settings)
        fences = {u: partition_fence(partition_of(u.encode(), count)) for u in user_ids}
    pauses = pauses or PausePoints()
    pauses.reach(points.BEFORE_ERASE)
    erased = [
        (user_id, store.erase(user_id, fence=fences.get(user_id, ALL_FENCES), at=at, reason=reason))
        for user_id in user_ids
    ]
    behind = 0
    if with_kafka:
        from interest_stream.streams.kafka.erasure import (
            input_end_offsets,
            publish_tombstones,
            wait_for_workers,
        )

        # The erasure's bound in the inputs: read after the erasure fenced the writers out,
        # so everything they stored of the user was below it.
        ends = input_end_offsets(settings)
        before = {f"{topic}:{partition}": end for (topic, partition), end in ends.items()}
        for user_id in user_ids:
            store.bound_erasure(user_id, before, fence=fences[user_id])
        behind = wait_for_workers(settings, ends, wait_s)
        pauses.reach(points.BEFORE_TOMBSTONE)
        publish_tombstones(settings, user_ids)
    return [
        Erasure(user_id, had, fences.get(user_id, ALL_FENCES), with_kafka, behind)
        for user_id, had in erased
    ]
