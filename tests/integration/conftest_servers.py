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

The secure and multi-node topologies (``deploy/local/up --secure`` / ``--nodes 3``) are
brought up by their fixtures when they are not running yet (and brought down again after
the session / module in that case); a topology that does not come up fails the test:

- ``secure_servers`` -> the variables of ``$LOCAL_SERVERS_HOME/secure/credentials.env``
  (the super users); ``identity_env(name)`` -> those of one identity's env file beside it
  (init, worker, reader, eraser, producer)
- ``three_nodes`` -> a ``Topology``: the variables of ``$LOCAL_SERVERS_HOME/nodes/cluster.env``
  and whether the fixture started it (it then purges it afterwards)
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

HOST = "127.0.0.1"
# How long a session fixture keeps trying before failing (a server may still be starting).
WAIT_S = float(os.environ.get("LOCAL_SERVERS_WAIT_S", "20"))
UP_HINT = "start the local servers with `deploy/local/up` (status: `deploy/local/status`)"
LOCAL = Path(__file__).resolve().parents[2] / "deploy" / "local"
# Bringing up a topology from nothing: jars copied once, then about a minute on 2 cores.
TOPOLOGY_UP_TIMEOUT_S = float(os.environ.get("LOCAL_TOPOLOGY_UP_TIMEOUT_S", "600"))


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


class CqlSession:
    """The tests' own CQL session, which outlives a server restart.

    A test restarts Cassandra under a running worker. After that the driver may keep a
    defunct connection in its pool, and back off reconnecting for minutes, so every later
    test's keyspace setup failed with NoHostAvailable. A request that found no host is
    tried once more on a new connection: NoHostAvailable means no host ran it.
    """

    def __init__(self, contact: tuple[str, int]) -> None:
        self._contact = contact
        self._cluster: Any = None
        self._session: Any = None
        self._connect()

    def _connect(self) -> None:
        from cassandra.cluster import Cluster
        from cassandra.policies import ConstantReconnectionPolicy

        if self._cluster is not None:
            self._cluster.shutdown()
        host, port = self._contact
        self._cluster = Cluster(
            [host],
            port=port,
            protocol_version=4,
            connect_timeout=10,
            reconnection_policy=ConstantReconnectionPolicy(1.0),
        )
        self._session = self._cluster.connect()
        self._session.default_timeout = 30  # the tests' own checks, on a busy machine

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        from cassandra.cluster import NoHostAvailable

        try:
            return self._session.execute(*args, **kwargs)
        except NoHostAvailable:
            self._connect()
            return self._session.execute(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)

    def shutdown(self) -> None:
        self._cluster.shutdown()


@pytest.fixture(scope="session")
def cassandra_session(cassandra_contact: tuple[str, int]) -> Iterator[Any]:
    session = CqlSession(cassandra_contact)
    yield session
    session.shutdown()


@pytest.fixture
def keyspace(cassandra_session: Any) -> Iterator[str]:
    name = f"ks_{uuid.uuid4().hex[:12]}"
    replication = "{'class': 'SimpleStrategy', 'replication_factor': 1}"
    # Schema changes wait for every node's agreement: generous on a busy 2-core machine.
    cassandra_session.execute(
        f"CREATE KEYSPACE IF NOT EXISTS {name} WITH replication = {replication}", timeout=60
    )
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


# ------------------------------------------------------------ secure and multi-node
def servers_home() -> Path:
    """$LOCAL_SERVERS_HOME as the deploy/local scripts resolve it."""
    home = Path(os.environ.get("LOCAL_SERVERS_HOME", str(LOCAL / ".cache")))
    return home if home.is_absolute() else LOCAL.parents[1] / home


def read_env_file(path: Path) -> dict[str, str]:
    """The `export NAME=value` lines of an env file that deploy/local/up wrote."""
    found = {}
    for line in path.read_text().splitlines():
        if line.startswith("export ") and "=" in line:
            name, _, value = line[len("export ") :].partition("=")
            found[name] = value
    return found


def local_script(*args: str, timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
    """Run one of the deploy/local scripts (same environment, so the same ports)."""
    return subprocess.run(
        [str(LOCAL / args[0]), *args[1:]], capture_output=True, text=True, timeout=timeout_s
    )


def _bring_up(flags: list[str], what: str) -> bool:
    """Start a topology unless it answers already; True when this call started it."""
    if local_script("status", *flags, timeout_s=120).returncode == 0:
        return False
    up = local_script("up", *flags, timeout_s=TOPOLOGY_UP_TIMEOUT_S)
    if up.returncode != 0:
        tail = "\n".join((up.stdout + up.stderr).splitlines()[-40:])
        local_script("down", *flags)
        pytest.fail(f"{what} did not come up (deploy/local/up {' '.join(flags)}):\n{tail}")
    return True


@pytest.fixture(scope="session")
def secure_servers() -> Iterator[dict[str, str]]:
    """Kafka on SASL_SSL and Cassandra with TLS and roles; the credentials.env variables."""
    started = _bring_up(["--secure"], "the secure servers")
    try:
        yield read_env_file(servers_home() / "secure" / "credentials.env")
    finally:
        if started:
            local_script("down", "--secure")


def identity_env(name: str) -> dict[str, str]:
    """The variables of one identity's env file of the secure servers (init.env, ...)."""
    return read_env_file(servers_home() / "secure" / f"{name}.env")


@dataclass(frozen=True)
class Topology:
    env: dict[str, str]
    """The variables of the env file `up` wrote for the topology's clients."""
    started_here: bool
    """The fixture started it, and deletes it with all its data afterwards."""


@pytest.fixture(scope="module")
def three_nodes() -> Iterator[Topology]:
    """Three Kafka brokers and three Cassandra nodes (127.0.0.1..3). Up for one module
    only: six idle JVMs would slow every other test on a small machine."""
    started = _bring_up(["--nodes", "3"], "the 3-node topology")
    try:
        yield Topology(read_env_file(servers_home() / "nodes" / "cluster.env"), started)
    finally:
        if started:  # purged: cheaper than dropping replicated keyspaces and topics
            local_script("down", "--purge", "--nodes", "3")
