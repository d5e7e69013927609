"""Least privilege by duty: what each identity of a deployment may do on Kafka and on
Cassandra, and `init`'s granting of it.

Four identities besides `init`'s own (which creates topics, keyspace and these grants):
the worker reads the input, repartition and `items` topics, writes the repartition topic,
`profile-updates` and the DLQ, uses its own consumer group, and reads and writes only the
tables it keeps (no schema rights, never `erasures` but to read it); the reader (rankers,
`profile …`, `watch`) reads the profile tables, `items`, `settings` (the catalogue's mean
vector scores are centred on) and `profile-updates`, with consumer groups under its own
prefix, and nothing else (not the inputs, not the DLQ, not `erasures`); the eraser
(`forget`) deletes a user's rows, records the erasure, reads how far the workers' group
has come and writes the tombstone; producers write the input and `items` topics. Every
Kafka ACL names one topic or one group (LITERAL) or the reader's group prefix (PREFIXED),
never `*`; every Cassandra permission names one table. An identity left unset in the
settings is granted nothing. Grants are idempotent: granting again changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from interest_stream.schemas.events import INPUT_TOPICS
from interest_stream.streams.errors import ConfigurationError, InterestStreamError
from interest_stream.streams.settings import Settings

Pattern = Literal["LITERAL", "PREFIXED"]
# Cassandra role names go into GRANT statements quoted: this keeps the quoting trivial.
_ROLE = re.compile(r"[A-Za-z0-9_.@-]{1,128}")


class GrantError(InterestStreamError):
    """A grant was refused or failed (the granting identity lacks the right to grant)."""


@dataclass(frozen=True)
class KafkaGrant:
    """ALLOW `operations` on one topic or one group (or group prefix) to one user."""

    user: str
    resource: Literal["TOPIC", "GROUP"]
    name: str
    pattern: Pattern
    operations: tuple[str, ...]

    def __str__(self) -> str:
        kind = "prefix " if self.pattern == "PREFIXED" else ""
        what = f"{self.resource.lower()} {kind}{self.name}"
        return f"kafka User:{self.user}: {', '.join(self.operations)} on {what}"


@dataclass(frozen=True)
class CassandraGrant:
    """`permissions` on one table to one role."""

    role: str
    table: str
    permissions: tuple[str, ...]

    def __str__(self) -> str:
        return f"cassandra {self.role}: {', '.join(self.permissions)} on {self.table}"


# Tables by duty (schemas/profiles.cql). The worker keeps the profile rows, their ANN
# copies, the fences of its partitions, the catalogue settings and the items it consumes;
# it reads `erasures` to drop a forgotten user's replayed events.
WORKER_TABLES = {
    "profiles": ("SELECT", "MODIFY"),
    "profile_domains": ("SELECT", "MODIFY"),
    "profile_ann": ("SELECT", "MODIFY"),
    "fences": ("SELECT", "MODIFY"),
    "settings": ("SELECT", "MODIFY"),
    "items": ("SELECT", "MODIFY"),
    "erasures": ("SELECT",),
}
READER_TABLES = {
    "profiles": ("SELECT",),
    "profile_domains": ("SELECT",),
    "profile_ann": ("SELECT",),
    "items": ("SELECT",),
    "settings": ("SELECT",),
}
# `forget` reads whether a profile exists, claims the user's fence (an LWT: SELECT and
# MODIFY), deletes the user's rows and records the erasure under the store's erasure key
# (kept in `settings` with its fingerprint when ERASURE_KEY is not set).
ERASER_TABLES = {
    "profiles": ("SELECT", "MODIFY"),
    "profile_domains": ("MODIFY",),
    "profile_ann": ("MODIFY",),
    "fences": ("SELECT", "MODIFY"),
    "erasures": ("SELECT", "MODIFY"),
    "settings": ("SELECT", "MODIFY"),
}


def kafka_grants(settings: Settings) -> list[KafkaGrant]:
    """The ACLs of every identity the settings name, on the (prefixed) topics of `init`."""
    inputs = [settings.topic(name) for name in INPUT_TOPICS]
    repartition = settings.topic(settings.repartition_topic)
    items = settings.topic(settings.items_topic)
    updates = settings.topic(settings.updates_topic)
    dlq = settings.topic(settings.dlq_topic)
    read, write, describe = ("READ", "DESCRIBE"), ("WRITE", "DESCRIBE"), ("DESCRIBE",)
    grants: list[KafkaGrant] = []

    def topics(user: str | None, names: Sequence[str], operations: tuple[str, ...]) -> None:
        if user:
            grants.extend(KafkaGrant(user, "TOPIC", n, "LITERAL", operations) for n in names)

    def group(user: str | None, name: str, pattern: Pattern, operations: tuple[str, ...]) -> None:
        if user:
            if not name:
                raise ConfigurationError("a consumer group (prefix) to grant must not be empty")
            grants.append(KafkaGrant(user, "GROUP", name, pattern, operations))

    # The worker forwards events that arrived on another partition than their user's
    # through the repartition topic, which it reads too.
    topics(settings.worker_kafka_user, [*inputs, items], read)
    topics(settings.worker_kafka_user, [repartition], ("READ", "WRITE", "DESCRIBE"))
    topics(settings.worker_kafka_user, [updates, dlq], write)
    group(settings.worker_kafka_user, settings.consumer_group, "LITERAL", ("READ",))
    topics(settings.reader_kafka_user, [updates], read)
    group(settings.reader_kafka_user, settings.reader_group_prefix, "PREFIXED", ("READ",))
    # forget reads the inputs' end offsets and the workers' committed ones (DESCRIBE on
    # their group: neither joining it nor committing), then writes the tombstones.
    topics(settings.eraser_kafka_user, [*inputs, repartition], describe)
    group(settings.eraser_kafka_user, settings.consumer_group, "LITERAL", describe)
    topics(settings.eraser_kafka_user, [updates], write)
    topics(settings.producer_kafka_user, [*inputs, items], write)
    return grants


def cassandra_grants(settings: Settings, keyspace: str) -> list[CassandraGrant]:
    """The table permissions of every role the settings name, in `keyspace`."""
    grants: list[CassandraGrant] = []
    for role, tables in (
        (settings.worker_cassandra_role, WORKER_TABLES),
        (settings.reader_cassandra_role, READER_TABLES),
        (settings.eraser_cassandra_role, ERASER_TABLES),
    ):
        if not role:
            continue
        if not _ROLE.fullmatch(role):
            raise ConfigurationError(f"bad Cassandra role name {role!r}")
        grants.extend(
            CassandraGrant(role, f"{keyspace}.{table}", permissions)
            for table, permissions in tables.items()
        )
    return grants


def grant_kafka(settings: Settings, client: Any) -> list[KafkaGrant]:
    """Create the ACLs of `kafka_grants` with an admin client of the granting identity."""
    from kafka.admin import (
        ACL,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        ResourcePattern,
        ResourceType,
    )

    grants = kafka_grants(settings)
    acls = [
        ACL(
            principal=f"User:{grant.user}",
            host="*",
            operation=ACLOperation[operation],
            permission_type=ACLPermissionType.ALLOW,
            resource_pattern=ResourcePattern(
                ResourceType[grant.resource],
                grant.name,
                ACLResourcePatternType[grant.pattern],
            ),
        )
        for grant in grants
        for operation in grant.operations
    ]
    if not acls:
        return []
    failed = client.create_acls(acls)["failed"]
    if failed:
        raise GrantError(
            f"Kafka at {settings.brokers} refused to create ACLs: {failed[0]}"
            " (the init identity needs ALTER on the cluster)"
        )
    return grants


def grant_cassandra(settings: Settings, session: Any, keyspace: str) -> list[CassandraGrant]:
    """GRANT the permissions of `cassandra_grants` in a session of the granting identity
    (which needs AUTHORIZE on the tables: the keyspace's creator has it)."""
    from interest_stream.store.cassandra import describe_error, driver_errors

    grants = cassandra_grants(settings, keyspace)
    for grant in grants:
        for permission in grant.permissions:
            try:
                session.execute(f'GRANT {permission} ON TABLE {grant.table} TO "{grant.role}"')
            except driver_errors() as exc:
                raise GrantError(
                    f"Cassandra refused GRANT {permission} ON {grant.table} TO {grant.role}:"
                    f" {describe_error(exc)}"
                ) from exc
    return grants
