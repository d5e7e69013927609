"""Pytest fixtures for the real local servers started by ``deploy/local/up``.

Load it as a plugin (``pytest_plugins = ["tests.integration.conftest_servers"]`` in
tests/conftest.py, or ``-p tests.integration.conftest_servers``).

Session fixtures check once that the server answers and *fail* (never skip) with a hint
to run ``deploy/local/up`` when it does not. Ports come from ``KAFKA_PORT`` and
``CASSANDRA_PORT`` (defaults 9092 and 9042), the same variables the scripts read.

- ``kafka_bootstrap`` -> "127.0.0.1:9092"
- ``kafka_admin`` -> a kafka-python ``KafkaAdminClient`` for the session
- ``topic_prefix`` -> unique per test, e.g. "t1a2b3c4d5e-"; topics named with it are
  deleted after the test
- ``cassandra_contact`` -> ("127.0.0.1", 9042)
- ``cassandra_session`` -> a cassandra-driver ``Session`` for the session
- ``keyspace`` -> a fresh keyspace (SimpleStrategy, RF 1) per test, dropped after it
- ``cluster`` -> {"bootstrap", "prefix", "store"}: that keyspace with the schema, and the
  input topics under that prefix
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

HOST = "127.0.0.1"
# How long a session fixture keeps trying before failing (a server may still be starting).
WAIT_S = float(os.environ.get("LOCAL_SERVERS_WAIT_S", "20"))
UP_HINT = "start the local servers with `deploy/local/up` (status: `deploy/local/status`)"


def _port(var: str, default: int) -> int:
    raw = os.environ.get(var, str(default))
    try:
        return int(raw)
    except ValueError:
        pytest.fail(f"{var}={raw!r} is not a port number", pytrace=False)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "kafka: needs the local Kafka broker (deploy/local/up)")
    config.addinivalue_line(
        "markers", "cassandra: needs the local Cassandra node (deploy/local/up)"
    )


T = TypeVar("T")


def _retry(what: str, address: tuple[str, int], attempt: Callable[[], T]) -> T:
    """attempt() until it returns, for at most WAIT_S; then fail the test with a hint."""
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            # a plain connect first: a closed port fails in microseconds, not client timeouts
            socket.create_connection(address, timeout=2).close()
            return attempt()
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        if time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    pytest.fail(f"{what} does not answer after {WAIT_S:.0f}s ({error}); {UP_HINT}", pytrace=False)


# ------------------------------------------------------------------------------ kafka
@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    from kafka import KafkaAdminClient

    bootstrap = f"{HOST}:{_port('KAFKA_PORT', 9092)}"

    def attempt() -> str:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap, request_timeout_ms=5000, client_id="it-probe"
        )
        try:
            if not admin.describe_cluster().get("brokers"):
                raise RuntimeError("metadata lists no broker")
        finally:
            admin.close()
        return bootstrap

    return _retry(f"Kafka broker at {bootstrap}", (HOST, _port("KAFKA_PORT", 9092)), attempt)


@pytest.fixture(scope="session")
def kafka_admin(kafka_bootstrap: str) -> Iterator[Any]:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(
        bootstrap_servers=kafka_bootstrap, request_timeout_ms=10000, client_id="it-admin"
    )
    yield admin
    admin.close()


@pytest.fixture
def topic_prefix(kafka_admin: Any) -> Iterator[str]:
    prefix = f"t{uuid.uuid4().hex[:10]}-"
    yield prefix
    try:  # best effort: keep the dev broker from collecting thousands of test topics
        mine = [t for t in kafka_admin.list_topics() if t.startswith(prefix)]
        if mine:
            kafka_admin.delete_topics(mine, timeout_ms=10000)
    except Exception:
        pass


# -------------------------------------------------------------------------- cassandra
@pytest.fixture(scope="session")
def cassandra_contact() -> tuple[str, int]:
    from cassandra.cluster import Cluster

    contact = (HOST, _port("CASSANDRA_PORT", 9042))

    def attempt() -> tuple[str, int]:
        cluster = Cluster(
            [contact[0]],
            port=contact[1],
            protocol_version=4,  # as interest_stream.store.cassandra.connect: see why there
            connect_timeout=5,
            control_connection_timeout=5,
        )
        try:
            cluster.connect().execute("SELECT release_version FROM system.local")
        finally:
            cluster.shutdown()
        return contact

    return _retry(f"Cassandra at {contact[0]}:{contact[1]}", contact, attempt)


@pytest.fixture(scope="session")
def cassandra_session(cassandra_contact: tuple[str, int]) -> Iterator[Any]:
    from cassandra.cluster import Cluster

    cluster = Cluster(
        [cassandra_contact[0]], port=cassandra_contact[1], protocol_version=4, connect_timeout=10
    )
    session = cluster.connect()
    yield session
    cluster.shutdown()


@pytest.fixture
def keyspace(cassandra_session: Any) -> Iterator[str]:
    name = f"ks_{uuid.uuid4().hex[:12]}"
    replication = "{'class': 'SimpleStrategy', 'replication_factor': 1}"
    cassandra_session.execute(f"CREATE KEYSPACE {name} WITH replication = {replication}")
    yield name
    cassandra_session.execute(f"DROP KEYSPACE IF EXISTS {name}", timeout=60)


@pytest.fixture
def cluster(
    kafka_bootstrap: str, cassandra_contact: tuple[str, int], keyspace: str, topic_prefix: str
) -> dict[str, str]:
    """A fresh keyspace with the schema and fresh input topics (6 partitions each)."""
    from interest_stream.store import open_store
    from tests.integration.harness import create_topics

    host, port = cassandra_contact
    store_url = f"cassandra://{host}:{port}/{keyspace}"
    open_store(store_url, create_schema=True).close()
    create_topics(kafka_bootstrap, topic_prefix)
    return {"bootstrap": kafka_bootstrap, "prefix": topic_prefix, "store": store_url}
