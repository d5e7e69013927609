"""Reaching a Cassandra cluster: `cassandra://` URLs, TLS and auth options, the driver's
connection with protocol v4 and token-aware routing, and `Requests`, which runs statements
concurrently with a bound on requests in flight. The driver (`cassandra-driver`, extra
`cassandra`) is imported only when a cluster is connected.
"""

from __future__ import annotations

import logging
import re
import ssl
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from pydantic import SecretStr

from interest_stream.streams.errors import ConfigurationError, MissingExtraError, StoreError

if TYPE_CHECKING:
    from cassandra.cluster import Cluster, Session
    from cassandra.query import Statement

log = logging.getLogger(__name__)

DEFAULT_PORT = 9042
DEFAULT_KEYSPACE = "interest_stream"
# Unquoted CQL identifiers: Cassandra folds them to lower case and allows 48 characters.
_IDENTIFIER = re.compile(r"[a-z][a-z0-9_]{0,47}")
_UNSENT_ATTEMPTS = 10  # about 5 s of pauses in all

Consistency = Literal["LOCAL_QUORUM", "QUORUM", "LOCAL_ONE", "ONE", "ALL"]


@dataclass(frozen=True)
class CassandraOptions:
    """How to connect and how much to ask of the cluster at once (from Settings)."""

    username: str | None = None
    password: SecretStr | None = None
    ssl_cafile: Path | None = None
    allow_plaintext_password: bool = False
    consistency: Consistency = "LOCAL_QUORUM"
    local_dc: str | None = None
    max_in_flight: int = 64
    ann_refresh_cosine: float = 0.99
    ann_refresh_interval_s: float = 30.0
    ann_fetch_factor: int = 4
    ann_index_options: tuple[tuple[str, str], ...] = ()  # applied when `init` creates them
    ann_horizons: tuple[str, ...] = ("long", "short")  # the copies' indexes `init` creates
    ann_copies: bool = True
    erasure_key: SecretStr | None = None  # keys the erasure records (store/base.py)


@dataclass(frozen=True)
class CassandraTarget:
    """Where a `cassandra://host1,host2:9042/keyspace` URL points."""

    hosts: tuple[str, ...]
    port: int
    keyspace: str

    def __str__(self) -> str:
        return f"{','.join(self.hosts)}:{self.port}/{self.keyspace}"


def parse_url(url: str) -> CassandraTarget:
    """`cassandra://h1,h2:9042/ks`; the port (default 9042) may also follow each host."""
    parts = urlsplit(url)
    if parts.scheme != "cassandra" or not parts.netloc:
        raise ConfigurationError(
            f"bad Cassandra URL {url!r}: expected cassandra://host1,host2:9042/keyspace"
        )
    hosts: list[str] = []
    ports: set[int] = set()
    for item in parts.netloc.split(","):
        host, port = _split_host_port(item.strip(), url)
        hosts.append(host)
        if port is not None:
            ports.add(port)
    if len(ports) > 1:
        raise ConfigurationError(f"bad Cassandra URL {url!r}: all hosts must use one port")
    keyspace = parts.path.strip("/") or DEFAULT_KEYSPACE
    return CassandraTarget(
        tuple(hosts), ports.pop() if ports else DEFAULT_PORT, checked_keyspace(keyspace)
    )


def _split_host_port(item: str, url: str) -> tuple[str, int | None]:
    if item.startswith("["):  # [IPv6]:port
        host, _, rest = item[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif item.count(":") == 1:
        host, port_text = item.split(":")
    else:
        host, port_text = item, ""
    if not host or (port_text and not port_text.isdigit()):
        raise ConfigurationError(f"bad Cassandra URL {url!r}: cannot read host {item!r}")
    return host, int(port_text) if port_text else None


def checked_keyspace(name: str) -> str:
    """A keyspace name safe to splice into CQL (it cannot be a bind parameter)."""
    folded = name.lower()
    if not _IDENTIFIER.fullmatch(folded):
        raise ConfigurationError(
            f"bad keyspace name {name!r}: letters, digits and _ only, at most 48, letter first"
        )
    return folded


def require_driver() -> None:
    try:
        import cassandra  # noqa: F401
    except ImportError as exc:
        raise MissingExtraError("cassandra-driver", "cassandra") from exc


def driver_errors() -> tuple[type[BaseException], ...]:
    """Everything the driver raises for an unreachable, overloaded or refusing cluster."""
    from cassandra import DriverException
    from cassandra.cluster import NoHostAvailable
    from cassandra.connection import ConnectionException

    return (DriverException, NoHostAvailable, ConnectionException)


def refused(exc: BaseException) -> bool:
    """Whether the cluster refused the request itself (no permission, an invalid request):
    trying it again gives the same answer, so it is not retried."""
    from cassandra import InvalidRequest, Unauthorized

    return isinstance(exc, Unauthorized | InvalidRequest)


def describe_error(exc: BaseException) -> str:
    """One line for a driver error; NoHostAvailable's per-host reasons included."""
    from cassandra.cluster import NoHostAvailable

    if isinstance(exc, NoHostAvailable):
        reasons = "; ".join(f"{host}: {reason}" for host, reason in exc.errors.items())
        return f"no host available ({reasons or 'no hosts tried'})"
    return f"{type(exc).__name__}: {exc}".replace("\n", " ")


def never_sent(outcome: Any) -> bool:
    """True for a driver error that proves the request never left this process."""
    from cassandra.cluster import NoHostAvailable
    from cassandra.connection import ConnectionBusy
    from cassandra.pool import NoConnectionsAvailable

    if not isinstance(outcome, NoHostAvailable) or not outcome.errors:
        return False
    unsent = (ConnectionBusy, NoConnectionsAvailable)
    return all(isinstance(error, unsent) for error in outcome.errors.values())


def _ssl_context(options: CassandraOptions) -> ssl.SSLContext | None:
    if options.ssl_cafile is None:
        return None
    try:
        context = ssl.create_default_context(cafile=str(options.ssl_cafile))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(
            f"cannot use Cassandra CA file {options.ssl_cafile}: {exc}"
        ) from exc
    # Host names checked too: the driver then verifies each node's certificate against
    # the address it connects to (the contact points, then the addresses the cluster
    # gossips), so node certificates must name those addresses (IP SANs). Without the
    # check any certificate from the CA would do, another server's included.
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def _auth_provider(options: CassandraOptions) -> Any:
    if options.username is None:
        return None
    if options.password is None:
        raise ConfigurationError(
            "INTEREST_STREAM_CASSANDRA_USERNAME is set but INTEREST_STREAM_CASSANDRA_PASSWORD"
            " is not"
        )
    if options.ssl_cafile is None and not options.allow_plaintext_password:
        raise ConfigurationError(
            f"the Cassandra password of {options.username!r} would travel in clear: set"
            " INTEREST_STREAM_CASSANDRA_SSL_CAFILE (TLS), or"
            " INTEREST_STREAM_ALLOW_PLAINTEXT_PASSWORD=true on a network you trust"
        )
    from cassandra.auth import PlainTextAuthProvider

    return PlainTextAuthProvider(
        username=options.username,
        password=options.password.get_secret_value(),
    )


class _ServerWarningsOnce(logging.Filter):
    """Lets each distinct server warning through once per process: Cassandra attaches the
    same notice (e.g. "SAI ANN indexes on vector columns are experimental") to every
    response of a kind, and the driver logs each one."""

    def __init__(self) -> None:
        super().__init__()
        self._seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if not message.startswith("Server warning"):
            return True
        first_line = message.splitlines()[0]
        if first_line in self._seen:
            return False
        self._seen.add(first_line)
        return True


_WARNINGS_ONCE = _ServerWarningsOnce()


def connect(
    target: CassandraTarget, options: CassandraOptions | None = None
) -> tuple[Cluster, Session]:
    """A connected cluster: token-aware routing, configured consistency, auth and TLS.

    Native protocol v4, set explicitly. v5 adds checksummed segments, and cassandra-driver
    (3.30.1 and earlier) drops the bytes of a segment header that a socket read splits in its
    first six bytes: the next header is then read out of place, the connection dies with
    "CRC mismatch on header" and its in-flight requests fail. Large profile rows make such a
    split likely enough to hit in tests. v4 has no segments and every feature used here
    (vectors travel as custom types). Fixing the version also keeps the driver from walking
    down from its DSE versions with a warning per host.
    """
    require_driver()
    options = options or CassandraOptions()
    for name in ("cassandra.protocol", "cassandra.cluster"):
        if _WARNINGS_ONCE not in logging.getLogger(name).filters:
            logging.getLogger(name).addFilter(_WARNINGS_ONCE)
    from cassandra import ConsistencyLevel, ProtocolVersion
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy
    from cassandra.query import tuple_factory

    consistency = ConsistencyLevel.name_to_value[options.consistency]
    # LWTs in the local DC unless the configured consistency spans DCs anyway.
    serial = (
        ConsistencyLevel.SERIAL
        if options.consistency in ("QUORUM", "ALL")
        else ConsistencyLevel.LOCAL_SERIAL
    )
    auth = _auth_provider(options)
    tls = _ssl_context(options)
    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc=options.local_dc)),
        consistency_level=consistency,
        serial_consistency_level=serial,
        row_factory=tuple_factory,  # no namedtuple class per result: we index columns
        request_timeout=12.0,  # above the server's 2 s write / 1 s CAS contention timeouts
    )
    cluster = Cluster(
        contact_points=list(target.hosts),
        port=target.port,
        protocol_version=ProtocolVersion.V4,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        auth_provider=auth,
        ssl_context=tls,
        connect_timeout=5.0,
        control_connection_timeout=5.0,
    )
    try:
        return cluster, cluster.connect()
    except driver_errors() as exc:
        cluster.shutdown()
        raise StoreError(f"cannot connect to Cassandra at {target}: {describe_error(exc)}") from exc


class Requests:
    """Runs statements concurrently, at most `max_in_flight` outstanding for every thread
    that shares this object; each result is a ResultSet or the exception it raised.

    Not `cassandra.concurrent.execute_concurrent`: it starts the next request from the
    previous one's callback, which recurses when many fail at once (measured: a
    RecursionError, then a TypeError while sorting its results). Here one loop submits, a
    semaphore bounds, callbacks only release.

    Requests the driver refused to send (its socket buffer full: "Connection is
    overloaded", or no free connection) were never seen by Cassandra, so they are sent again
    after a short pause, LWTs included: the backpressure that large rows need from a slow
    node.
    """

    def __init__(self, session: Session, max_in_flight: int) -> None:
        self.session = session
        self._slots = threading.BoundedSemaphore(max_in_flight)

    def run(self, statements: Sequence[Statement]) -> list[Any]:
        if not statements:
            return []
        results: list[Any] = [None] * len(statements)
        pending = list(range(len(statements)))
        for attempt in range(_UNSENT_ATTEMPTS):
            if attempt:
                time.sleep(min(0.02 * 2**attempt, 1.0))
            for index, outcome in zip(
                pending, self._round([statements[i] for i in pending]), strict=True
            ):
                results[index] = outcome
            pending = [i for i in pending if never_sent(results[i])]
            if not pending:
                break
        if pending:
            log.warning(
                "%d requests refused by the driver as overloaded after %d tries",
                len(pending),
                _UNSENT_ATTEMPTS,
            )
        return results

    def _round(self, statements: Sequence[Statement]) -> list[Any]:
        slots = self._slots
        futures: list[Any] = []
        for statement in statements:
            slots.acquire()
            try:
                future = self.session.execute_async(statement)
            except Exception as exc:  # refused before sending, e.g. NoHostAvailable
                slots.release()
                futures.append(exc)
                continue
            future.add_callbacks(
                callback=lambda _rows: slots.release(), errback=lambda _exc: slots.release()
            )
            futures.append(future)
        results: list[Any] = []
        for future in futures:
            if isinstance(future, Exception):
                results.append(future)
                continue
            try:
                results.append(future.result())  # the request's own timeout bounds this wait
            except Exception as exc:
                results.append(exc)
        return results
