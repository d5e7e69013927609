"""The Cassandra schema: schemas/profiles.cql with its keyspace, replication and vector
dimension filled in, applied idempotently (`ensure_schema`, behind `interest-stream init`),
and the checks that refuse a keyspace this version cannot use.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from string import Template
from typing import TYPE_CHECKING, Any

from interest_stream.store.cassandra.connect import checked_keyspace, describe_error, driver_errors
from interest_stream.store.cassandra.statements import HORIZONS
from interest_stream.streams.errors import ConfigurationError, StoreError, StoreRefusedError

if TYPE_CHECKING:
    from cassandra.cluster import Cluster, Session

log = logging.getLogger(__name__)

DEFAULT_DIM = 384
"""Vector dimension the schema is created with: all-MiniLM-L6-v2 (and the hashing encoder)."""

LOCAL_REPLICATION: Mapping[str, str | int] = {"class": "SimpleStrategy", "replication_factor": 1}
"""One copy: for a single local node. Production: NetworkTopologyStrategy, e.g. {dc: 3}."""

_REPLICATION_WORD = re.compile(r"[A-Za-z0-9_.\-]+")
ANN_INDEX_OPTIONS = ("maximum_node_connections", "construction_beam_width", "optimize_for")
"""The options of the ANN copies' vector indexes a deployment may set (`ann_index_options`);
their similarity function is the schema's (dot product)."""
_OPTION_VALUE = re.compile(r"[A-Za-z0-9_]+")
_CUSTOM_INDEX = "CREATE CUSTOM INDEX IF NOT EXISTS "
_CREATES = re.compile(r"CREATE (?:CUSTOM )?(KEYSPACE|TABLE|INDEX) IF NOT EXISTS (\w+(?:\.\w+)?)")
_VECTOR_TYPE = re.compile(r"vector<float,\s*(\d+)>")
DDL_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class SchemaReport:
    """What `ensure_schema` found and created."""

    keyspace: str
    replication: dict[str, str]
    dim: int
    created: tuple[str, ...]
    existing: tuple[str, ...]
    unlisted: tuple[str, ...] = ()
    """ANN copy indexes that exist though `ann_horizons` leaves them out (kept)."""


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


def ann_index_options(text: str) -> dict[str, str]:
    """The `ann_index_options` setting ('key=value, ...') as a map, checked.

    Raises:
        ConfigurationError: an item is not key=value, or not an option `ann_options_cql`
            takes.
    """
    options = {}
    try:
        for item in text.split(","):
            if not item.strip():
                continue
            key, equals, value = item.partition("=")
            if not equals or not key.strip() or not value.strip():
                raise ConfigurationError(f"{item.strip()!r} is not key=value")
            options[key.strip()] = value.strip()
        ann_options_cql(options)
    except ConfigurationError as exc:
        raise ConfigurationError(f"invalid configuration: ann_index_options: {exc}") from None
    return options


def ann_options_cql(options: Mapping[str, str]) -> str:
    """The ANN index options as the rest of a CQL option map (", 'key': 'value'" each)."""
    items = []
    for key, value in sorted(options.items()):
        if key not in ANN_INDEX_OPTIONS:
            raise ConfigurationError(
                f"unknown ANN index option {key!r}: choose from {', '.join(ANN_INDEX_OPTIONS)}"
            )
        if not _OPTION_VALUE.fullmatch(value):
            raise ConfigurationError(f"bad value {value!r} for the ANN index option {key}")
        items.append(f", '{key}': '{value}'")
    return "".join(items)


def schema_statements(
    keyspace: str,
    *,
    replication: Mapping[str, str | int] = LOCAL_REPLICATION,
    dim: int = DEFAULT_DIM,
    ann_index_options: Mapping[str, str] | None = None,
    ann_horizons: Sequence[str] = HORIZONS,
) -> list[str]:
    """schemas/profiles.cql with its placeholders filled in, one CQL statement per item;
    of the ANN copies' vector indexes only those of `ann_horizons`."""
    if (
        not ann_horizons
        or set(ann_horizons) - set(HORIZONS)
        or len(set(ann_horizons)) < len(ann_horizons)
    ):
        raise ConfigurationError(
            f"invalid configuration: ann_horizons: {','.join(ann_horizons)!r} is not one or"
            f" both of {', '.join(HORIZONS)}"
        )
    if dim < 1:
        raise ConfigurationError(f"vector dimension must be positive, got {dim}")
    template = (
        resources.files("interest_stream.schemas")
        .joinpath("profiles.cql")
        .read_text(encoding="utf-8")
    )
    text = Template(template).substitute(
        keyspace=checked_keyspace(keyspace),
        replication=replication_map(replication),
        dim=dim,
        ann_options=ann_options_cql(ann_index_options or {}),
    )
    # The file has no string literal containing "--" or ";", so this simple split is exact.
    code = "\n".join(line.split("--", 1)[0] for line in text.splitlines())
    unindexed = tuple(f"profile_ann_{h} " for h in HORIZONS if h not in ann_horizons)
    statements = [" ".join(part.split()) for part in code.split(";") if part.strip()]
    return [s for s in statements if not s.removeprefix(_CUSTOM_INDEX).startswith(unindexed)]


def _schema_objects(cluster: Cluster, keyspace: str) -> set[str]:
    meta = cluster.metadata.keyspaces.get(keyspace)
    if meta is None:
        return set()
    names = {keyspace}
    for table_name, table in meta.tables.items():
        names.add(f"{keyspace}.{table_name}")
        names.update(f"{keyspace}.{index}" for index in table.indexes)
    return names


SCHEMA_AGREEMENT_S = 60.0
"""How long opening a store waits for the nodes to agree on the schema (after an `init`)."""


def read_agreed_schema(cluster: Cluster, keyspace: str) -> None:
    """Read `keyspace`'s schema anew once the nodes agree on it.

    The driver reads the schema from one node when it connects; on a cluster where `init`
    just created tables, that node may not have them yet, and the store would report an
    older layout. Raises a retriable StoreError when the nodes do not agree in time.
    """
    try:
        cluster.refresh_keyspace_metadata(keyspace, max_schema_agreement_wait=SCHEMA_AGREEMENT_S)
    except driver_errors() as exc:
        raise StoreError(
            f"Cassandra nodes do not agree on the schema of {keyspace} after"
            f" {SCHEMA_AGREEMENT_S:.0f} s (a schema change in progress?): {describe_error(exc)}"
        ) from exc


def table_dim(cluster: Cluster, keyspace: str) -> int | None:
    """The vector dimension `keyspace.profiles` was created with; None if there is no table."""
    meta = cluster.metadata.keyspaces.get(keyspace)
    table = meta.tables.get("profiles") if meta is not None else None
    column = table.columns.get("long") if table is not None else None
    if column is None:
        return None
    match = _VECTOR_TYPE.fullmatch(column.cql_type.replace(" ", ""))
    if match is None:
        raise StoreRefusedError(
            f"{keyspace}.profiles.long is {column.cql_type}, not vector<float, N>"
        )
    return int(match.group(1))


def indexed_horizons(cluster: Cluster, keyspace: str) -> tuple[str, ...]:
    """The horizons of `keyspace.profile_ann` that have a vector index, in HORIZONS order."""
    indexes = _ann_indexes(cluster, keyspace)
    return tuple(horizon for horizon in HORIZONS if horizon in indexes)


def _ann_indexes(cluster: Cluster, keyspace: str) -> dict[str, str]:
    """horizon -> the name of an index on `keyspace.profile_ann`'s column of it."""
    meta = cluster.metadata.keyspaces.get(keyspace)
    table = meta.tables.get("profile_ann") if meta is not None else None
    if table is None:
        return {}
    return {index.index_options.get("target"): name for name, index in table.indexes.items()}


def check_layout(cluster: Cluster, keyspace: str) -> None:
    """Refuse a keyspace laid out by an earlier version (version-fenced LWTs with the
    profile in `profile_states`, or the whole profile in `profiles.state` before that):
    this store could not read its profiles back, nor fence its writers."""
    tables = cluster.metadata.keyspaces[keyspace].tables
    columns = tables["profiles"].columns
    problems = [f"a {t} table" for t in ("profile_states",) if t in tables]
    problems += ["profiles.write_id"] if "write_id" in columns else []
    problems += [f"no {t} table" for t in ("fences", "erasures", "settings") if t not in tables]
    if "erasures" in tables and "before" not in tables["erasures"].columns:
        raise StoreRefusedError(
            f"{keyspace}.erasures has no `before` column (a keyspace of an earlier version):"
            " run `interest-stream init --cassandra` once to add it"
        )
    if "state" in columns and "profile_states" not in tables and "fences" not in tables:
        problems.append("the layout before profile_states")
    if problems:
        raise StoreRefusedError(
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
    ann_index_options: Mapping[str, str] | None = None,
    ann_horizons: Sequence[str] = HORIZONS,
) -> SchemaReport:
    """Create the keyspace, tables and indexes that are missing; never alters existing ones.

    An existing keyspace keeps its replication (the report shows it); an existing table
    with another vector dimension is an error, since it cannot hold this encoder's vectors.
    `ann_index_options` apply to the ANN copies' indexes when they are created (existing
    ones keep theirs: drop the two `profile_ann_*` indexes to rebuild them with others).
    Of those two, only the indexes of `ann_horizons` are created; one that exists though
    `ann_horizons` leaves it out is kept, and the report names it (`unlisted`).
    """
    before = _schema_objects(cluster, keyspace)
    indexed_before = _ann_indexes(cluster, keyspace)
    statements = schema_statements(
        keyspace,
        replication=replication,
        dim=dim,
        ann_index_options=ann_index_options,
        ann_horizons=ann_horizons,
    )
    expected: list[str] = []
    try:
        for statement in statements:
            match = _CREATES.match(statement)
            if match is not None:
                name = match.group(2)
                # Index names are unqualified in CQL but unique per keyspace.
                expected.append(f"{keyspace}.{name}" if match.group(1) == "INDEX" else name)
            session.execute(statement, timeout=DDL_TIMEOUT_S)
        erasures = cluster.metadata.keyspaces[keyspace].tables.get("erasures")
        if erasures is not None and "before" not in erasures.columns:
            # Added since the first layout; an added column loses nothing.
            session.execute(
                f"ALTER TABLE {keyspace}.erasures ADD before map<text, bigint>",
                timeout=DDL_TIMEOUT_S,
            )
        if not cluster.control_connection.wait_for_schema_agreement():
            log.warning("Cassandra nodes do not agree on the schema yet; continuing")
    except driver_errors() as exc:
        raise StoreError(
            f"cannot create the schema in keyspace {keyspace}: {describe_error(exc)}"
        ) from exc
    found = table_dim(cluster, keyspace)
    if found != dim:
        raise StoreRefusedError(
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
        unlisted=tuple(
            f"{keyspace}.{name}"
            for horizon, name in sorted(indexed_before.items())
            if horizon in HORIZONS and horizon not in ann_horizons
        ),
    )


def _replication_of(strategy: Any) -> dict[str, str]:
    # export_for_schema() gives a CQL map literal such as
    # "{'class': 'SimpleStrategy', 'replication_factor': '1'}".
    exported = str(strategy.export_for_schema())
    return dict(re.findall(r"'([^']*)'\s*:\s*'([^']*)'", exported))
