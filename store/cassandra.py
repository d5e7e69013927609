"""Cassandra profile store: `ProfileStore` over `profiles` and the tables that go with it.

The production backend. Every profile write is one lightweight transaction on the user's
`profiles` row fenced by the stored version (INSERT IF NOT EXISTS for a new user, UPDATE
IF version = ? otherwise), run concurrently with a bounded number of requests in flight.
That row holds what readers query (the current vectors, weights, clusters, applied
offsets) and the fence: `version` and the `write_id` of the write that stored it. The
lossless profile (store/codec.py, about 50-120 KB: the event summary and the recent event
ids) is too large to carry through Paxos, which writes its payload several times: it goes
first, as a plain write, to an immutable `profile_states` row keyed (user_id, version,
write_id), and the LWT then makes it current by storing its `write_id`. `get` reads the
fence and the user's state rows side by side and decodes the state the fence names. After
a won write, older states are deleted (one range tombstone) and the per-domain rows follow;
a lost write deletes its own state row. The SAI vector indexes behind `nearest_users` are
on `profile_ann`, copies of the profile vectors written in the background and only once a
profile has moved away from its copy (store/ann_copies.py): inserting into a vector index
was the largest measured cost of a write. The schema lives in schemas/profiles.cql;
`ensure_schema` applies it and `interest-stream init` calls that. The driver
(`cassandra-driver`, extra `cassandra`) is imported only when a store is opened.
"""

from __future__ import annotations

import logging
import re
import ssl
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from string import Template
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import numpy as np
import numpy.typing as npt

from store.ann_copies import AnnCopy, AnnRefresher
from store.base import ApplyResult, ProfileWrite, StoredItem
from store.codec import decode_profile, encode_profile
from streams.errors import ConfigurationError, MissingExtraError, StoreError
from streams.profile import UserProfile

if TYPE_CHECKING:
    from cassandra.cluster import Cluster, ResultSet, Session
    from cassandra.query import BoundStatement, PreparedStatement, Statement

    from streams.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_PORT = 9042
DEFAULT_KEYSPACE = "interest_stream"
DEFAULT_DIM = 384
"""Vector dimension the schema is created with: all-MiniLM-L6-v2 (and the hashing encoder)."""

LOCAL_REPLICATION: Mapping[str, str | int] = {"class": "SimpleStrategy", "replication_factor": 1}
"""One copy: for a single local node. Production: NetworkTopologyStrategy, e.g. {dc: 3}."""

# Unquoted CQL identifiers: Cassandra folds them to lower case and allows 48 characters.
_IDENTIFIER = re.compile(r"[a-z][a-z0-9_]{0,47}")
_REPLICATION_WORD = re.compile(r"[A-Za-z0-9_.\-]+")
_CREATES = re.compile(r"CREATE (?:CUSTOM )?(KEYSPACE|TABLE|INDEX) IF NOT EXISTS (\w+(?:\.\w+)?)")
_VECTOR_TYPE = re.compile(r"vector<float,\s*(\d+)>")
DDL_TIMEOUT_S = 60.0

# Columns a profile write sets, in bind order (user_id comes first for INSERT, last for UPDATE).
_PROFILE_COLUMNS = (
    "version",
    "write_id",
    "model_id",
    "updated_at",
    "event_count",
    "short",
    "long",
    "short_weight",
    "long_weight",
    "t_ref",
    "cluster_labels",
    "cluster_weights",
    "applied_offsets",
)
_DOMAIN_COLUMNS = (
    "user_id",
    "domain",
    "version",
    "updated_at",
    "short",
    "long",
    "short_weight",
    "long_weight",
    "t_ref",
)
_HORIZONS = ("short", "long")
_FOLLOW_UP_ATTEMPTS = 3
_STATE_READ_ATTEMPTS = 5
_UNSENT_ATTEMPTS = 10  # about 5 s of pauses in all

Horizon = Literal["short", "long"]


# --- addressing and connecting -------------------------------------------------------------


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


def _require_driver() -> None:
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


def describe_error(exc: BaseException) -> str:
    """One line for a driver error; NoHostAvailable's per-host reasons included."""
    from cassandra.cluster import NoHostAvailable

    if isinstance(exc, NoHostAvailable):
        reasons = "; ".join(f"{host}: {reason}" for host, reason in exc.errors.items())
        return f"no host available ({reasons or 'no hosts tried'})"
    return f"{type(exc).__name__}: {exc}".replace("\n", " ")


def _never_sent(outcome: Any) -> bool:
    """True for a driver error that proves the request never left this process."""
    from cassandra.cluster import NoHostAvailable
    from cassandra.connection import ConnectionBusy
    from cassandra.pool import NoConnectionsAvailable

    if not isinstance(outcome, NoHostAvailable) or not outcome.errors:
        return False
    unsent = (ConnectionBusy, NoConnectionsAvailable)
    return all(isinstance(error, unsent) for error in outcome.errors.values())


def _ssl_context(settings: Settings) -> ssl.SSLContext | None:
    if settings.cassandra_ssl_cafile is None:
        return None
    try:
        context = ssl.create_default_context(cafile=str(settings.cassandra_ssl_cafile))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(
            f"cannot use Cassandra CA file {settings.cassandra_ssl_cafile}: {exc}"
        ) from exc
    # The driver reaches peers by the IP addresses the cluster gossips, which node
    # certificates rarely name: verify the chain against the CA, not the host name.
    context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def _auth_provider(settings: Settings) -> Any:
    if settings.cassandra_username is None:
        return None
    if settings.cassandra_password is None:
        raise ConfigurationError(
            "INTEREST_STREAM_CASSANDRA_USERNAME is set but INTEREST_STREAM_CASSANDRA_PASSWORD"
            " is not"
        )
    from cassandra.auth import PlainTextAuthProvider

    return PlainTextAuthProvider(
        username=settings.cassandra_username,
        password=settings.cassandra_password.get_secret_value(),
    )


def connect(target: CassandraTarget, settings: Settings) -> tuple[Cluster, Session]:
    """A connected cluster: token-aware routing, configured consistency, auth and TLS.

    Native protocol v4, set explicitly. v5 adds checksummed segments, and cassandra-driver
    (3.30.1 and earlier) drops the bytes of a segment header that a socket read splits in its
    first six bytes: the next header is then read out of place, the connection dies with
    "CRC mismatch on header" and its in-flight requests fail. Large profile rows make such a
    split likely enough to hit in tests. v4 has no segments and every feature used here
    (vectors travel as custom types). Fixing the version also keeps the driver from walking
    down from its DSE versions with a warning per host.
    """
    _require_driver()
    from cassandra import ConsistencyLevel, ProtocolVersion
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy
    from cassandra.query import tuple_factory

    consistency = ConsistencyLevel.name_to_value[settings.cassandra_consistency]
    # LWTs in the local DC unless the configured consistency spans DCs anyway.
    serial = (
        ConsistencyLevel.SERIAL
        if settings.cassandra_consistency in ("QUORUM", "ALL")
        else ConsistencyLevel.LOCAL_SERIAL
    )
    auth = _auth_provider(settings)
    tls = _ssl_context(settings)
    profile = ExecutionProfile(
        load_balancing_policy=TokenAwarePolicy(
            DCAwareRoundRobinPolicy(local_dc=settings.cassandra_local_dc)
        ),
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


# --- schema ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SchemaReport:
    """What `ensure_schema` found and created."""

    keyspace: str
    replication: dict[str, str]
    dim: int
    created: tuple[str, ...]
    existing: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "keyspace": self.keyspace,
            "replication": self.replication,
            "dim": self.dim,
            "created": list(self.created),
            "existing": list(self.existing),
        }


def replication_map(replication: Mapping[str, str | int]) -> str:
    """A replication option map as CQL, e.g. {'class': 'SimpleStrategy', ...}."""
    if "class" not in replication:
        raise ConfigurationError(f"replication {dict(replication)!r} names no 'class'")
    items = []
    for key, value in replication.items():
        for word in (key, str(value)):
            if not _REPLICATION_WORD.fullmatch(word):
                raise ConfigurationError(f"bad replication option {word!r}")
        items.append(f"'{key}': '{value}'")
    return "{" + ", ".join(items) + "}"


def schema_statements(
    keyspace: str,
    *,
    replication: Mapping[str, str | int] = LOCAL_REPLICATION,
    dim: int = DEFAULT_DIM,
) -> list[str]:
    """schemas/profiles.cql with its placeholders filled in, one CQL statement per item."""
    if dim < 1:
        raise ConfigurationError(f"vector dimension must be positive, got {dim}")
    template = resources.files("schemas").joinpath("profiles.cql").read_text(encoding="utf-8")
    text = Template(template).substitute(
        keyspace=checked_keyspace(keyspace), replication=replication_map(replication), dim=dim
    )
    # The file has no string literal containing "--" or ";", so this simple split is exact.
    code = "\n".join(line.split("--", 1)[0] for line in text.splitlines())
    return [" ".join(part.split()) for part in code.split(";") if part.strip()]


def _schema_objects(cluster: Cluster, keyspace: str) -> set[str]:
    meta = cluster.metadata.keyspaces.get(keyspace)
    if meta is None:
        return set()
    names = {keyspace}
    for table_name, table in meta.tables.items():
        names.add(f"{keyspace}.{table_name}")
        names.update(f"{keyspace}.{index}" for index in table.indexes)
    return names


def table_dim(cluster: Cluster, keyspace: str) -> int | None:
    """The vector dimension `keyspace.profiles` was created with; None if there is no table."""
    meta = cluster.metadata.keyspaces.get(keyspace)
    table = meta.tables.get("profiles") if meta is not None else None
    column = table.columns.get("long") if table is not None else None
    if column is None:
        return None
    match = _VECTOR_TYPE.fullmatch(column.cql_type.replace(" ", ""))
    if match is None:
        raise StoreError(f"{keyspace}.profiles.long is {column.cql_type}, not vector<float, N>")
    return int(match.group(1))


def _check_layout(cluster: Cluster, keyspace: str) -> None:
    """Refuse a keyspace laid out by an earlier version (the whole profile in
    `profiles.state`): this store could not read its profiles back."""
    tables = cluster.metadata.keyspaces[keyspace].tables
    problems = ["profiles.state"] if "state" in tables["profiles"].columns else []
    problems += [f"no {t} table" for t in ("profile_states", "profile_ann") if t not in tables]
    if problems:
        raise StoreError(
            f"keyspace {keyspace} has an older profile layout ({', '.join(problems)}): this"
            " version cannot read its profiles. Rebuild them into a new keyspace (replay the"
            " topics from the start with a new consumer group), or drop this one"
            f" (DROP KEYSPACE {keyspace}) and run `interest-stream init --cassandra`"
        )


def ensure_schema(
    cluster: Cluster,
    session: Session,
    keyspace: str,
    *,
    replication: Mapping[str, str | int] = LOCAL_REPLICATION,
    dim: int = DEFAULT_DIM,
) -> SchemaReport:
    """Create the keyspace, tables and indexes that are missing; never alters existing ones.

    An existing keyspace keeps its replication (the report shows it); an existing table
    with another vector dimension is an error, since it cannot hold this encoder's vectors.
    """
    before = _schema_objects(cluster, keyspace)
    statements = schema_statements(keyspace, replication=replication, dim=dim)
    expected: list[str] = []
    try:
        for statement in statements:
            match = _CREATES.match(statement)
            if match is not None:
                name = match.group(2)
                # Index names are unqualified in CQL but unique per keyspace.
                expected.append(f"{keyspace}.{name}" if match.group(1) == "INDEX" else name)
            session.execute(statement, timeout=DDL_TIMEOUT_S)
        if not cluster.control_connection.wait_for_schema_agreement():
            log.warning("Cassandra nodes do not agree on the schema yet; continuing")
    except driver_errors() as exc:
        raise StoreError(
            f"cannot create the schema in keyspace {keyspace}: {describe_error(exc)}"
        ) from exc
    found = table_dim(cluster, keyspace)
    if found != dim:
        raise StoreError(
            f"{keyspace}.profiles stores vector<float, {found}> but the encoder has {dim}"
            " dimensions: use another keyspace (or drop this one)"
        )
    strategy = cluster.metadata.keyspaces[keyspace].replication_strategy
    return SchemaReport(
        keyspace=keyspace,
        replication=_replication_of(strategy),
        dim=dim,
        created=tuple(name for name in expected if name not in before),
        existing=tuple(name for name in expected if name in before),
    )


def _replication_of(strategy: Any) -> dict[str, str]:
    # export_for_schema() gives a CQL map literal such as
    # "{'class': 'SimpleStrategy', 'replication_factor': '1'}".
    exported = str(strategy.export_for_schema())
    return dict(re.findall(r"'([^']*)'\s*:\s*'([^']*)'", exported))


# --- the store ------------------------------------------------------------------------------


def vector_bytes(vector: npt.NDArray[np.floating], dim: int) -> bytes:
    """The CQL wire form of vector<float, dim>: dim big-endian IEEE floats, nothing else.

    The driver (3.30) packs vectors one float at a time, about 60 µs for 384 floats;
    numpy writes the same bytes in under 1 µs (tests/integration checks they are equal).
    """
    packed = np.asarray(vector, dtype=">f4")
    if packed.shape != (dim,):
        raise StoreError(f"vector of shape {packed.shape} for a vector<float, {dim}> column")
    return packed.tobytes()


def _bind(
    prepared: PreparedStatement,
    values: Sequence[Any],
    vectors: Mapping[int, npt.NDArray[np.floating] | None],
    dim: int,
) -> BoundStatement:
    """Bind `values` by position, the vectors (by marker index) pre-serialized.

    `BoundStatement.values` holds the serialized parameters the driver sends: binding None
    in a vector slot and then putting our bytes there skips the driver's slow packing.
    """
    bound = prepared.bind(list(values))
    for index, vector in vectors.items():
        if vector is not None:
            bound.values[index] = vector_bytes(vector, dim)
    return bound


@dataclass(frozen=True)
class _Statements:
    """The prepared statements of one store instance (never shared between instances)."""

    insert: PreparedStatement
    insert_unfenced: PreparedStatement
    update: PreparedStatement
    read_fence: PreparedStatement
    write_state: PreparedStatement
    read_states: PreparedStatement
    prune_states: PreparedStatement
    drop_state: PreparedStatement
    write_domain: PreparedStatement
    write_ann: PreparedStatement
    delete_profile: PreparedStatement
    delete_ann: PreparedStatement
    delete_states: PreparedStatement
    delete_domains: PreparedStatement
    list_ids: PreparedStatement
    nearest: Mapping[str, PreparedStatement]

    @classmethod
    def prepare(cls, session: Session, keyspace: str) -> _Statements:
        from cassandra import ConsistencyLevel

        profiles, domains = f"{keyspace}.profiles", f"{keyspace}.profile_domains"
        states, ann = f"{keyspace}.profile_states", f"{keyspace}.profile_ann"
        columns = ", ".join(_PROFILE_COLUMNS)
        marks = ", ".join("?" * (len(_PROFILE_COLUMNS) + 1))
        assignments = ", ".join(f"{c} = ?" for c in _PROFILE_COLUMNS)
        statements = cls(
            insert=session.prepare(
                f"INSERT INTO {profiles} (user_id, {columns}) VALUES ({marks}) IF NOT EXISTS"
            ),
            insert_unfenced=session.prepare(
                f"INSERT INTO {profiles} (user_id, {columns}) VALUES ({marks})"
            ),
            update=session.prepare(
                f"UPDATE {profiles} SET {assignments} WHERE user_id = ? IF version = ?"
            ),
            read_fence=session.prepare(
                f"SELECT version, write_id FROM {profiles} WHERE user_id = ?"
            ),
            write_state=session.prepare(
                f"INSERT INTO {states} (user_id, version, write_id, state) VALUES (?, ?, ?, ?)"
            ),
            read_states=session.prepare(
                f"SELECT version, write_id, state FROM {states} WHERE user_id = ?"
            ),
            prune_states=session.prepare(f"DELETE FROM {states} WHERE user_id = ? AND version < ?"),
            drop_state=session.prepare(
                f"DELETE FROM {states} WHERE user_id = ? AND version = ? AND write_id = ?"
            ),
            write_domain=session.prepare(
                f"INSERT INTO {domains} ({', '.join(_DOMAIN_COLUMNS)})"
                f" VALUES ({', '.join('?' * len(_DOMAIN_COLUMNS))})"
            ),
            write_ann=session.prepare(
                f"INSERT INTO {ann} (user_id, version, model_id, updated_at, short, long)"
                " VALUES (?, ?, ?, ?, ?, ?)"
            ),
            delete_profile=session.prepare(f"DELETE FROM {profiles} WHERE user_id = ? IF EXISTS"),
            delete_ann=session.prepare(f"DELETE FROM {ann} WHERE user_id = ?"),
            delete_states=session.prepare(f"DELETE FROM {states} WHERE user_id = ?"),
            delete_domains=session.prepare(f"DELETE FROM {domains} WHERE user_id = ?"),
            list_ids=session.prepare(f"SELECT user_id FROM {profiles}"),
            nearest={
                horizon: session.prepare(
                    f"SELECT user_id, similarity_cosine({horizon}, ?) FROM {ann}"
                    f" ORDER BY {horizon} ANN OF ? LIMIT ?"
                )
                for horizon in _HORIZONS
            },
        )
        for idempotent in (
            statements.read_fence,
            statements.write_state,
            statements.read_states,
            statements.prune_states,
            statements.drop_state,
            statements.write_domain,
            statements.write_ann,
            statements.delete_ann,
            statements.delete_states,
            statements.delete_domains,
            statements.list_ids,
        ):
            idempotent.is_idempotent = True
        for ann in statements.nearest.values():
            # Cassandra 5.0 runs ANN only at ONE / LOCAL_ONE and without paging.
            ann.consistency_level = ConsistencyLevel.LOCAL_ONE
            ann.fetch_size = None
            ann.is_idempotent = True
        return statements


Outcome = Literal["won", "lost", "unknown"]


class CassandraStore:
    """`ProfileStore` over a Cassandra keyspace; see the module docstring.

    Writes (`apply`): each user's state row first (plain writes), then one LWT per user, at
    most `cassandra_max_in_flight` requests in flight. `[applied]` decides won or lost,
    except where the outcome is unknown: any error but a refusal (invalid request, no
    permission) may hide a Paxos round that went on to commit (a WriteTimeout after the
    propose phase, a WriteFailure in the commit phase, a client-side timeout, a lost
    connection), and a driver retry of a round that had committed reports "not applied"
    while the row holds our own version. Each write carries a fresh random `write_id`; in
    those cases the row is read back at SERIAL consistency (which completes any round in
    flight, so the answer is final) and the write won if and only if the stored `write_id`
    is ours. Comparing versions alone would not do: a racing writer that read the same
    version stores the same version number. A lost write stored nothing; the caller re-reads
    and re-folds. If even the read-back fails, `apply` raises StoreError and the batch must
    not be acknowledged.
    Requests the driver never sent (its buffers full) are sent again; see `_execute_all`.

    The state row is written before the LWT, so a fence that names a `write_id` always
    finds its state (a crash in between leaves only an orphan row, deleted by the user's
    next won write). The `profile_domains` rows of the winners follow as plain idempotent
    writes (one single-partition batch per user), with the deletion of older states, all
    retried a few times. Domain rows are derived data: a reader that needs them consistent
    with the profile compares their `version`. Their
    cell timestamps are client clocks, so a stale domain write can overtake a newer one
    only if two workers race on one user (a rebalance) with clocks further apart than a
    whole read-fold-write cycle; the next change of that domain repairs it.
    """

    def __init__(
        self, cluster: Cluster, session: Session, keyspace: str, settings: Settings
    ) -> None:
        self.keyspace = checked_keyspace(keyspace)
        self._cluster = cluster
        self._session = session
        # One bound for every thread of this store (batches and the ANN refresher).
        self._slots = threading.BoundedSemaphore(settings.cassandra_max_in_flight)
        self._ann = AnnRefresher(self._write_ann_copies, min_cosine=settings.ann_refresh_cosine)
        dim = table_dim(cluster, self.keyspace)
        if dim is None:
            raise StoreError(
                f"keyspace {self.keyspace} has no profiles table: run"
                f" `interest-stream init --cassandra` (or open the store with create_schema)"
            )
        self.dim = dim
        _check_layout(cluster, self.keyspace)
        self._items_prepared: dict[str, PreparedStatement] | None = None
        try:
            self._statements = _Statements.prepare(session, self.keyspace)
        except driver_errors() as exc:
            raise StoreError(
                f"cannot prepare statements on {self.keyspace}: {describe_error(exc)}"
            ) from exc

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        settings: Settings | None = None,
        create_schema: bool = False,
    ) -> CassandraStore:
        """Connect to `cassandra://host1,host2:9042/keyspace`.

        `create_schema` creates what is missing (SimpleStrategy, one replica, if the
        keyspace itself is missing): for tests and local use; production runs
        `interest-stream init --cassandra` with its replication instead.
        """
        _require_driver()
        if settings is None:
            from streams.settings import load_settings

            settings = load_settings()
        target = parse_url(url)
        cluster, session = connect(target, settings)
        try:
            if create_schema:
                ensure_schema(cluster, session, target.keyspace)
            return cls(cluster, session, target.keyspace, settings)
        except BaseException:
            cluster.shutdown()
            raise

    # -- helpers ---------------------------------------------------------------------------

    def _execute_all(self, statements: Sequence[Statement]) -> list[Any]:
        """Run statements with at most `max_in_flight` outstanding; a ResultSet or the
        exception for each, in order.

        Not `cassandra.concurrent.execute_concurrent`: it starts the next request from the
        previous one's callback, which recurses when many fail at once (measured: a
        RecursionError, then a TypeError while sorting its results). Here one loop
        submits, a semaphore bounds, callbacks only release.

        Requests the driver refused to send (its socket buffer full: "Connection is
        overloaded", or no free connection) were never seen by Cassandra, so they are
        sent again after a short pause, LWTs included; this is the backpressure that
        large profile rows need from a slow node.
        """
        if not statements:
            return []
        results: list[Any] = [None] * len(statements)
        pending = list(range(len(statements)))
        for attempt in range(_UNSENT_ATTEMPTS):
            if attempt:
                time.sleep(min(0.02 * 2**attempt, 1.0))
            for index, outcome in zip(
                pending, self._execute_round([statements[i] for i in pending]), strict=True
            ):
                results[index] = outcome
            pending = [i for i in pending if _never_sent(results[i])]
            if not pending:
                break
        if pending:
            log.warning(
                "%d requests refused by the driver as overloaded after %d tries",
                len(pending),
                _UNSENT_ATTEMPTS,
            )
        return results

    def _execute_round(self, statements: Sequence[Statement]) -> list[Any]:
        slots = self._slots
        futures: list[Any] = []
        for statement in statements:
            slots.acquire()
            try:
                future = self._session.execute_async(statement)
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

    def _error(self, action: str, exc: BaseException) -> StoreError:
        return StoreError(f"Cassandra {action} ({self.keyspace}): {describe_error(exc)}")

    def _profile_write(
        self, write: ProfileWrite, write_id: uuid.UUID, *, fenced: bool = True
    ) -> BoundStatement:
        profile = write.profile
        if profile.dim != self.dim:
            raise StoreError(
                f"profile of {profile.user_id!r} has {profile.dim} dimensions but"
                f" {self.keyspace}.profiles stores vector<float, {self.dim}>"
            )
        state = profile.state
        values: dict[str, Any] = {
            "user_id": profile.user_id,
            "version": profile.version,
            "write_id": write_id,
            "model_id": profile.model_id,
            # The driver reads a number bound to a timestamp column as milliseconds.
            "updated_at": round(profile.updated_at * 1000),
            "event_count": profile.event_count,
            "short_weight": state.short.weight,
            "long_weight": state.long.weight,
            "t_ref": state.long.t_ref,
            "cluster_labels": [cluster.label for cluster in profile.clusters],
            "cluster_weights": [cluster.weight for cluster in profile.clusters],
            "applied_offsets": dict(profile.applied_offsets),
        }
        columns = [values.get(column) for column in _PROFILE_COLUMNS]  # vectors: None here
        vectors = {"short": state.short.profile(), "long": state.long.profile()}
        slots = {_PROFILE_COLUMNS.index(name): vector for name, vector in vectors.items()}
        if write.expected_version == 0 or not fenced:
            # INSERT markers: user_id, then the columns.
            return _bind(
                self._statements.insert if fenced else self._statements.insert_unfenced,
                [profile.user_id, *columns],
                {index + 1: vector for index, vector in slots.items()},
                self.dim,
            )
        # UPDATE markers: the SET columns, user_id, then the expected version of the IF.
        return _bind(
            self._statements.update,
            [*columns, profile.user_id, write.expected_version],
            slots,
            self.dim,
        )

    def _domain_writes(self, profile: UserProfile) -> Statement | None:
        from cassandra.query import BatchStatement, BatchType

        rows = []
        for domain in sorted(profile.domains):
            interests = profile.domains[domain]
            values = {
                "user_id": profile.user_id,
                "domain": domain,
                "version": profile.version,
                "updated_at": round(profile.updated_at * 1000),
                "short_weight": interests.short.weight,
                "long_weight": interests.long.weight,
                "t_ref": interests.long.t_ref,
            }
            vectors = {
                _DOMAIN_COLUMNS.index("short"): interests.short.profile(),
                _DOMAIN_COLUMNS.index("long"): interests.long.profile(),
            }
            ordered = [values.get(column) for column in _DOMAIN_COLUMNS]
            rows.append(_bind(self._statements.write_domain, ordered, vectors, self.dim))
        if len(rows) <= 1:
            return rows[0] if rows else None
        # All rows share the partition: an unlogged batch is one mutation, one round trip.
        batch = BatchStatement(batch_type=BatchType.UNLOGGED)
        for row in rows:
            batch.add(row)
        batch.is_idempotent = True
        return batch

    def _outcome_not_applied(
        self, write: ProfileWrite, write_id: uuid.UUID, result: ResultSet
    ) -> Outcome:
        row = result.one()
        names = list(result.column_names or ())
        if "write_id" in names:  # a failed INSERT IF NOT EXISTS returns the whole row
            return "won" if row[names.index("write_id")] == write_id else "lost"
        stored_version = row[names.index("version")] if "version" in names else None
        # The stored version equals ours: either a rival that read the same version won,
        # or a retry of our own committed round came back "not applied". Read to know.
        return "unknown" if stored_version == write.profile.version else "lost"

    def _resolve(self, uncertain: list[tuple[ProfileWrite, uuid.UUID]]) -> set[str]:
        """Users whose uncertain write is, definitively, the stored one."""
        from cassandra import ConsistencyLevel

        reads = []
        for write, _ in uncertain:
            read = self._statements.read_fence.bind((write.profile.user_id,))
            # A read at SERIAL consistency finishes any Paxos round in progress on the row,
            # so what it returns is final: the way to learn the fate of a timed-out LWT.
            read.consistency_level = ConsistencyLevel.LOCAL_SERIAL
            reads.append(read)
        won: set[str] = set()
        for (write, write_id), result in zip(uncertain, self._execute_all(reads), strict=True):
            user_id = write.profile.user_id
            if isinstance(result, BaseException):
                raise self._error(
                    f"write of user {user_id!r} has an unknown outcome and reading it back"
                    " failed; nothing may be acknowledged",
                    result,
                )
            row = result.one()
            if row is not None and row[1] == write_id:
                won.add(user_id)
        return won

    def _state_write(self, write: ProfileWrite, write_id: uuid.UUID) -> BoundStatement:
        profile = write.profile
        return self._statements.write_state.bind(
            (profile.user_id, profile.version, write_id, encode_profile(profile))
        )

    def _write_ann_copies(self, copies: Sequence[AnnCopy]) -> list[BaseException | None]:
        """The ANN refresher's writer (its own thread): one plain write per copy."""
        statements = []
        for copy in copies:
            values = [
                copy.user_id,
                copy.version,
                copy.model_id,
                round(copy.updated_at * 1000),
                None,  # vectors: pre-serialized by _bind
                None,
            ]
            vectors = {4: copy.vectors[0], 5: copy.vectors[1]}
            statements.append(_bind(self._statements.write_ann, values, vectors, self.dim))
        return [r if isinstance(r, BaseException) else None for r in self._execute_all(statements)]

    def _write_retried(self, pending: list[tuple[str, Statement]], what: str) -> None:
        """Run idempotent writes, retrying the failed ones; StoreError naming `what` and
        the users if some still fail."""
        for attempt in range(1, _FOLLOW_UP_ATTEMPTS + 1):
            results = self._execute_all([statement for _, statement in pending])
            failed = [
                (item, r)
                for item, r in zip(pending, results, strict=True)
                if isinstance(r, BaseException)
            ]
            if not failed:
                return
            if attempt == _FOLLOW_UP_ATTEMPTS:
                users = sorted({user_id for (user_id, _), _ in failed})
                raise self._error(
                    f"{what} failed for {len(users)} users ({', '.join(users[:5])})",
                    failed[0][1],
                )
            log.warning(
                "%s failed for %d requests, retrying: %s",
                what,
                len(failed),
                describe_error(failed[0][1]),
            )
            pending = [item for item, _ in failed]

    def _execute_fences(self, statements: Sequence[Statement]) -> list[Any]:
        """The LWT round of `apply` (its own method so tests can make it fail)."""
        return self._execute_all(statements)

    # -- ProfileStore ----------------------------------------------------------------------

    def get(self, user_ids: Sequence[str]) -> dict[str, UserProfile]:
        """Stored profiles: per user, the fence and the state rows, read side by side as
        single-partition reads (token-aware, concurrent), which scales with the cluster
        where `IN` over many partitions would load one coordinator.

        The state is the row whose (version, write_id) the fence names. If a newer write
        won between the two reads, that row may already be deleted: those users are read
        again.
        """
        pending = list(dict.fromkeys(user_ids))
        found: dict[str, UserProfile] = {}
        for _ in range(_STATE_READ_ATTEMPTS):
            reads = []
            for user_id in pending:
                reads.append(self._statements.read_fence.bind((user_id,)))
                reads.append(self._statements.read_states.bind((user_id,)))
            results = self._execute_all(reads)
            moved: list[str] = []
            for index, user_id in enumerate(pending):
                fence, states = results[2 * index], results[2 * index + 1]
                for result in (fence, states):
                    if isinstance(result, BaseException):
                        raise self._error(f"read of user {user_id!r} failed", result)
                current = fence.one()
                if current is None:
                    continue  # no profile
                state = next(
                    (row[2] for row in states if (row[0], row[1]) == (current[0], current[1])),
                    None,
                )
                if state is None:
                    moved.append(user_id)
                else:
                    found[user_id] = decode_profile(state)
            if not moved:
                return found
            pending = moved
        raise StoreError(
            f"Cassandra read ({self.keyspace}): the state named by the profile of"
            f" {pending[0]!r} is missing after {_STATE_READ_ATTEMPTS} reads"
        )

    def apply(self, writes: Sequence[ProfileWrite]) -> ApplyResult:
        """Store each profile whose stored version equals its expected version (one LWT per
        user, concurrently); see the class docstring for timeouts and domain rows."""
        users = [write.profile.user_id for write in writes]
        if len(set(users)) != len(users):
            raise ValueError("apply got several writes for one user: write each user once")
        from cassandra import RequestValidationException

        write_ids = [uuid.uuid4() for _ in writes]
        statements = [self._profile_write(w, i) for w, i in zip(writes, write_ids, strict=True)]
        self._write_retried(
            [
                (w.profile.user_id, self._state_write(w, i))
                for w, i in zip(writes, write_ids, strict=True)
            ],
            "writing profile states (nothing is fenced yet)",
        )
        won: set[str] = set()
        uncertain: list[tuple[ProfileWrite, uuid.UUID]] = []
        failures: list[tuple[str, BaseException]] = []
        for write, write_id, result in zip(
            writes, write_ids, self._execute_fences(statements), strict=True
        ):
            user_id = write.profile.user_id
            if isinstance(result, RequestValidationException):
                # Refused before execution (bad request, no permission): nothing happened.
                raise self._error(f"write of user {user_id!r} was refused", result)
            if isinstance(result, BaseException):
                failures.append((user_id, result))
                uncertain.append((write, write_id))
                continue
            outcome = (
                "won" if result.was_applied else self._outcome_not_applied(write, write_id, result)
            )
            if outcome == "won":
                won.add(user_id)
            elif outcome == "unknown":
                uncertain.append((write, write_id))
        if failures:
            log.warning(
                "%d of %d writes failed with an unknown outcome (first: user %r, %s);"
                " reading them back at SERIAL consistency",
                len(failures),
                len(writes),
                failures[0][0],
                describe_error(failures[0][1]),
            )
        if uncertain:
            won |= self._resolve(uncertain)
        follow_ups: list[tuple[str, Statement]] = []
        for write, write_id in zip(writes, write_ids, strict=True):
            profile = write.profile
            if profile.user_id in won:
                prune = self._statements.prune_states.bind((profile.user_id, profile.version))
                follow_ups.append((profile.user_id, prune))
                domains = self._domain_writes(profile)
                if domains is not None:
                    follow_ups.append((profile.user_id, domains))
            else:  # lost: nothing names our state row
                drop = self._statements.drop_state.bind(
                    (profile.user_id, profile.version, write_id)
                )
                follow_ups.append((profile.user_id, drop))
        self._write_retried(
            follow_ups, "profiles are stored but their per-domain rows or old-state deletes"
        )
        self._ann.offer([w.profile for w in writes if w.profile.user_id in won])
        return ApplyResult(
            tuple(u for u in users if u in won), tuple(u for u in users if u not in won)
        )

    def delete(self, user_id: str) -> bool:
        """Erase the profile (an LWT, so it is ordered with fenced writes) and then all
        state and per-domain rows of the user."""
        self._ann.forget(user_id)  # no copy of this user may be written after the delete
        try:
            existed = bool(
                self._session.execute(self._statements.delete_profile, (user_id,)).was_applied
            )
            self._session.execute(self._statements.delete_states, (user_id,))
            self._session.execute(self._statements.delete_ann, (user_id,))
            self._session.execute(self._statements.delete_domains, (user_id,))
        except driver_errors() as exc:
            raise self._error(f"delete of user {user_id!r} failed", exc) from exc
        return existed

    def user_ids(self, limit: int | None = None) -> list[str]:
        """All user ids, sorted: a full, paged table scan, sorted in Python (Cassandra
        orders partitions by token). For listings and tests, not for hot paths."""
        try:
            ids = sorted(row[0] for row in self._session.execute(self._statements.list_ids))
        except driver_errors() as exc:
            raise self._error("scan of user ids failed", exc) from exc
        return ids[:limit] if limit else ids

    def write_unfenced(self, profiles: Sequence[UserProfile]) -> int:
        """Store the rows `apply` stores for each profile (state, profile row, per-domain
        rows) as plain unconditional writes: no fence, no old-state delete, no ANN copy.
        Only for the pipeline benchmark's ceiling, which must write the same rows without
        the logic; never for real profiles. Returns the number of requests."""
        statements: list[Statement] = []
        for profile in profiles:
            write, write_id = ProfileWrite(profile, 0), uuid.uuid4()
            statements.append(self._state_write(write, write_id))
            statements.append(self._profile_write(write, write_id, fenced=False))
            domains = self._domain_writes(profile)
            if domains is not None:
                statements.append(domains)
        for result in self._execute_all(statements):
            if isinstance(result, BaseException):
                raise self._error("unfenced benchmark write failed", result)
        return len(statements)

    def flush_ann(self, timeout: float = 60.0) -> bool:
        """Wait until the ANN copies of every stored profile are written (see
        store/ann_copies.py); False if `timeout` ran out first."""
        return self._ann.flush(timeout)

    def close(self) -> None:
        self._ann.close()
        self._cluster.shutdown()

    # -- beyond the protocol ---------------------------------------------------------------

    def nearest_users(
        self,
        vector: npt.NDArray[np.floating],
        *,
        horizon: Horizon = "long",
        limit: int = 10,
    ) -> list[tuple[str, float]]:
        """Users whose `horizon` profile is nearest `vector` (SAI ANN), with cosine similarity.

        Approximate and at LOCAL_ONE (Cassandra 5.0 allows no more for ANN): for rankers
        and exploration, not for decisions that need the latest write.
        """
        if horizon not in self._statements.nearest:
            raise ValueError(f"horizon must be 'short' or 'long', not {horizon!r}")
        packed = vector_bytes(vector, self.dim)
        bound = self._statements.nearest[horizon].bind([None, None, limit])
        bound.values[0] = bound.values[1] = packed
        try:
            rows = list(self._session.execute(bound))
        except driver_errors() as exc:
            raise self._error("ANN query failed", exc) from exc
        # similarity_cosine is (1 + cos) / 2; callers think in cosines.
        return [(user_id, 2.0 * float(similarity) - 1.0) for user_id, similarity in rows]

    # -- items (ItemCatalog) ---------------------------------------------------------------

    def _item_statements(self) -> dict[str, PreparedStatement]:
        """Prepared on first use: a store that never sees items never prepares them."""
        if self._items_prepared is None:
            table = f"{self.keyspace}.items"
            try:
                prepared = {
                    "read": self._session.prepare(
                        f"SELECT item_id, text, domain, model_id, vector FROM {table}"
                        " WHERE item_id = ?"
                    ),
                    "write": self._session.prepare(
                        f"INSERT INTO {table} (item_id, text, domain, model_id, vector,"
                        " updated_at) VALUES (?, ?, ?, ?, ?, toTimestamp(now()))"
                    ),
                    "delete": self._session.prepare(
                        f"DELETE FROM {table} WHERE item_id = ? IF EXISTS"
                    ),
                    "nearest": self._session.prepare(
                        f"SELECT item_id, text, similarity_cosine(vector, ?) FROM {table}"
                        " ORDER BY vector ANN OF ? LIMIT ?"
                    ),
                }
            except driver_errors() as exc:
                raise self._error("preparing item statements failed", exc) from exc
            from cassandra import ConsistencyLevel

            prepared["read"].is_idempotent = prepared["write"].is_idempotent = True
            prepared["nearest"].consistency_level = ConsistencyLevel.LOCAL_ONE
            prepared["nearest"].fetch_size = None
            self._items_prepared = prepared
        return self._items_prepared

    def get_items(self, item_ids: Sequence[str]) -> dict[str, StoredItem]:
        """Items by id, one concurrent single-partition read each."""
        ids = list(dict.fromkeys(item_ids))
        read = self._item_statements()["read"]
        found: dict[str, StoredItem] = {}
        for item_id, result in zip(
            ids, self._execute_all([read.bind((i,)) for i in ids]), strict=True
        ):
            if isinstance(result, BaseException):
                raise self._error(f"read of item {item_id!r} failed", result)
            row = result.one()
            if row is not None and row[4] is not None:
                vector = np.asarray(row[4], dtype=np.float32)
                found[item_id] = StoredItem(row[0], row[1], row[2], row[3], vector)
        return found

    def put_items(self, items: Sequence[StoredItem]) -> None:
        """Plain (idempotent) upserts: the `items` topic is compacted, last write wins."""
        write = self._item_statements()["write"]
        statements = []
        for item in items:
            bound = write.bind((item.item_id, item.text, item.domain, item.model_id, None))
            bound.values[4] = vector_bytes(item.vector, self.dim)
            statements.append(bound)
        for item, result in zip(items, self._execute_all(statements), strict=True):
            if isinstance(result, BaseException):
                raise self._error(f"write of item {item.item_id!r} failed", result)

    def delete_item(self, item_id: str) -> bool:
        try:
            result = self._session.execute(self._item_statements()["delete"], (item_id,))
        except driver_errors() as exc:
            raise self._error(f"delete of item {item_id!r} failed", exc) from exc
        return bool(result.was_applied)

    def nearest_items(
        self, vector: npt.NDArray[np.floating], *, limit: int = 10
    ) -> list[tuple[str, str, float]]:
        """Items nearest `vector` (SAI ANN at LOCAL_ONE): (item_id, text, cosine)."""
        bound = self._item_statements()["nearest"].bind([None, None, limit])
        bound.values[0] = bound.values[1] = vector_bytes(vector, self.dim)
        try:
            rows = list(self._session.execute(bound))
        except driver_errors() as exc:
            raise self._error("item ANN query failed", exc) from exc
        return [(item_id, text, 2.0 * float(sim) - 1.0) for item_id, text, sim in rows]
