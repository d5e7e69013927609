"""What `init` grants each identity, and the transport checks that need no server: a
password never leaves in clear unless a setting allows it, and Cassandra's TLS context
checks host names."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from interest_stream.store.cassandra.connect import (
    CassandraOptions,
    _auth_provider,
    _ssl_context,
)
from interest_stream.streams.errors import ConfigurationError
from interest_stream.streams.grants import cassandra_grants, kafka_grants
from interest_stream.streams.kafka.clients import security_options
from interest_stream.streams.settings import load_settings

IDENTITIES = {
    "worker_kafka_user": "w",
    "reader_kafka_user": "r",
    "eraser_kafka_user": "e",
    "producer_kafka_user": "p",
    "worker_cassandra_role": "w",
    "reader_cassandra_role": "r",
    "eraser_cassandra_role": "e",
}


def _kafka(user: str) -> dict[tuple[str, str, str], set[str]]:
    grants = kafka_grants(load_settings(topic_prefix="x-", consumer_group="g", **IDENTITIES))
    found: dict[tuple[str, str, str], set[str]] = {}
    for grant in grants:
        assert grant.name not in ("*", "x-", ""), grant  # never a wildcard
        if grant.user == user:
            key = (grant.resource, grant.pattern, grant.name)
            found.setdefault(key, set()).update(grant.operations)
    return found


def test_the_worker_reads_inputs_writes_outputs_and_uses_its_group_alone() -> None:
    assert _kafka("w") == {
        ("TOPIC", "LITERAL", "x-clicks"): {"READ", "DESCRIBE"},
        ("TOPIC", "LITERAL", "x-reviews"): {"READ", "DESCRIBE"},
        ("TOPIC", "LITERAL", "x-queries"): {"READ", "DESCRIBE"},
        ("TOPIC", "LITERAL", "x-items"): {"READ", "DESCRIBE"},
        ("TOPIC", "LITERAL", "x-events-by-user"): {"READ", "WRITE", "DESCRIBE"},
        ("TOPIC", "LITERAL", "x-profile-updates"): {"WRITE", "DESCRIBE"},
        ("TOPIC", "LITERAL", "x-interest-stream-dlq"): {"WRITE", "DESCRIBE"},
        ("GROUP", "LITERAL", "g"): {"READ"},
    }


def test_the_reader_follows_updates_under_its_group_prefix_and_nothing_else() -> None:
    assert _kafka("r") == {
        ("TOPIC", "LITERAL", "x-profile-updates"): {"READ", "DESCRIBE"},
        ("GROUP", "PREFIXED", "profile-reader"): {"READ"},
    }


def test_the_eraser_and_the_producers() -> None:
    assert _kafka("e") == {
        ("TOPIC", "LITERAL", "x-clicks"): {"DESCRIBE"},
        ("TOPIC", "LITERAL", "x-reviews"): {"DESCRIBE"},
        ("TOPIC", "LITERAL", "x-queries"): {"DESCRIBE"},
        ("TOPIC", "LITERAL", "x-events-by-user"): {"DESCRIBE"},
        ("GROUP", "LITERAL", "g"): {"DESCRIBE"},  # the workers' offsets: no join, no commit
        ("TOPIC", "LITERAL", "x-profile-updates"): {"WRITE", "DESCRIBE"},
    }
    assert {name for _, _, name in _kafka("p")} == {"x-clicks", "x-reviews", "x-queries", "x-items"}
    assert all(ops == {"WRITE", "DESCRIBE"} for ops in _kafka("p").values())


def test_unset_identities_get_nothing() -> None:
    settings = load_settings()
    assert kafka_grants(settings) == [] and cassandra_grants(settings, "ks") == []


def test_cassandra_tables_by_duty() -> None:
    grants = cassandra_grants(load_settings(**IDENTITIES), "ks")
    tables = {(g.role, g.table): set(g.permissions) for g in grants}
    reader = {table for role, table in tables if role == "r"}
    assert reader == {
        "ks.profiles",
        "ks.profile_domains",
        "ks.profile_ann",
        "ks.items",
        "ks.settings",
    }
    assert all(tables[("r", t)] == {"SELECT"} for t in reader)
    assert tables[("w", "ks.erasures")] == {"SELECT"}  # the worker never writes erasures
    assert tables[("e", "ks.erasures")] == {"SELECT", "MODIFY"}
    assert tables[("e", "ks.settings")] == {"SELECT", "MODIFY"}  # the erasure key
    assert ("e", "ks.items") not in tables
    # no schema rights for anyone: permissions are SELECT and MODIFY only
    assert set().union(*tables.values()) == {"SELECT", "MODIFY"}


def test_a_role_name_that_would_need_escaping_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="bad Cassandra role name"):
        cassandra_grants(load_settings(reader_cassandra_role='x" TO admin; --'), "ks")


def test_sasl_plain_over_plaintext_is_refused_unless_allowed() -> None:
    plain = {
        "kafka_security_protocol": "SASL_PLAINTEXT",
        "kafka_sasl_mechanism": "PLAIN",
        "kafka_username": "u",
        "kafka_password": "p",
    }
    with pytest.raises(ConfigurationError, match="would send the password of user 'u' in clear"):
        security_options(load_settings(**plain))
    allowed = security_options(load_settings(**plain, allow_plaintext_password=True))
    assert allowed["sasl_mechanism"] == "PLAIN"
    # SCRAM never sends the password itself; over TLS, PLAIN is fine
    scram = security_options(load_settings(**{**plain, "kafka_sasl_mechanism": "SCRAM-SHA-512"}))
    assert scram["sasl_mechanism"] == "SCRAM-SHA-512"
    tls = security_options(load_settings(**{**plain, "kafka_security_protocol": "SASL_SSL"}))
    assert tls["ssl_check_hostname"] is True


def test_a_cassandra_password_without_tls_is_refused_unless_allowed() -> None:
    options = CassandraOptions(
        username="u", password=load_settings(cassandra_password="p").cassandra_password
    )
    with pytest.raises(ConfigurationError, match="would travel in clear"):
        _auth_provider(options)
    allowed = CassandraOptions(
        username="u", password=options.password, allow_plaintext_password=True
    )
    assert _auth_provider(allowed) is not None


def test_the_cassandra_tls_context_checks_host_names() -> None:
    import certifi  # any PEM CA file will do

    context = _ssl_context(CassandraOptions(ssl_cafile=Path(certifi.where())))
    assert context is not None
    assert context.check_hostname is True and context.verify_mode == ssl.CERT_REQUIRED
