"""The prepared statements of one Cassandra store and the binding of vectors into them.

Every data write carries `USING TIMESTAMP ?`: the timestamp its fence handed out (see
fences.py). Vectors are serialized by numpy, not by the driver (see `vector_bytes`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from interest_stream.streams.errors import StoreRefusedError

if TYPE_CHECKING:
    from cassandra.cluster import Session
    from cassandra.query import BoundStatement, PreparedStatement

# Columns a profile write sets, in bind order, after user_id.
PROFILE_COLUMNS = (
    "version",
    "model_id",
    "updated_at",
    "event_count",
    "short",
    "long",
    "short_weight",
    "long_weight",
    "t_ref",
    "half_lives",
    "cluster_labels",
    "cluster_weights",
    "disliked_labels",
    "applied_offsets",
    "state",
)
DOMAIN_COLUMNS = (
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
HORIZONS = ("short", "long")
READ_CHUNK = 64
"""Users read by one `IN` query: one request for many partitions, bounded fan-out."""

Horizon = Literal["short", "long"]


def vector_bytes(vector: npt.NDArray[np.floating], dim: int) -> bytes:
    """The CQL wire form of vector<float, dim>: dim big-endian IEEE floats, nothing else.

    The driver (3.30) packs vectors one float at a time, about 60 µs for 384 floats;
    numpy writes the same bytes in under 1 µs (tests/integration checks they are equal).
    """
    packed = np.asarray(vector, dtype=">f4")
    if packed.shape != (dim,):
        raise StoreRefusedError(f"vector of shape {packed.shape} for a vector<float, {dim}> column")
    return packed.tobytes()


def bind_vectors(
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


def _marks(count: int) -> str:
    return ", ".join("?" * count)


@dataclass(frozen=True)
class Statements:
    """The prepared statements of one store instance (never shared between instances)."""

    write_profile: PreparedStatement
    write_domain: PreparedStatement
    drop_domain: PreparedStatement
    write_ann: PreparedStatement
    read_states: PreparedStatement
    read_erasures: PreparedStatement
    read_fence: PreparedStatement
    list_fences: PreparedStatement
    create_fence: PreparedStatement
    claim_fence: PreparedStatement
    advance_fence: PreparedStatement
    erase_profile: PreparedStatement
    erase_domains: PreparedStatement
    erase_ann: PreparedStatement
    record_erasure: PreparedStatement
    bound_erasure: PreparedStatement
    read_setting: PreparedStatement
    keep_setting: PreparedStatement
    list_ids: PreparedStatement
    nearest: Mapping[str, PreparedStatement]

    @classmethod
    def prepare(
        cls,
        session: Session,
        keyspace: str,
        *,
        ann_written: Sequence[str] = HORIZONS,
        ann_queried: Sequence[str] = HORIZONS,
    ) -> Statements:
        """`ann_written`: the copies' columns a copy writes (not empty); `ann_queried`: those
        nearest-user queries are prepared for (their columns must be indexed)."""
        from cassandra import ConsistencyLevel

        ks = keyspace
        profiles, domains, ann = f"{ks}.profiles", f"{ks}.profile_domains", f"{ks}.profile_ann"
        columns = ", ".join(PROFILE_COLUMNS)
        ids = ", ".join("?" * READ_CHUNK)
        statements = cls(
            write_profile=session.prepare(
                f"INSERT INTO {profiles} (user_id, {columns})"
                f" VALUES ({_marks(len(PROFILE_COLUMNS) + 1)}) USING TIMESTAMP ?"
            ),
            write_domain=session.prepare(
                f"INSERT INTO {domains} ({', '.join(DOMAIN_COLUMNS)})"
                f" VALUES ({_marks(len(DOMAIN_COLUMNS))}) USING TIMESTAMP ?"
            ),
            drop_domain=session.prepare(
                f"DELETE FROM {domains} USING TIMESTAMP ? WHERE user_id = ? AND domain = ?"
            ),
            write_ann=session.prepare(
                f"INSERT INTO {ann} (user_id, version, model_id, updated_at,"
                f" {', '.join(ann_written)}) VALUES ({_marks(4 + len(ann_written))})"
                " USING TIMESTAMP ?"
            ),
            read_states=session.prepare(
                f"SELECT user_id, state, short, long FROM {profiles} WHERE user_id IN ({ids})"
            ),
            read_erasures=session.prepare(
                f"SELECT user_id, erased_at, before FROM {ks}.erasures WHERE user_id IN ({ids})"
            ),
            read_fence=session.prepare(
                f"SELECT epoch, owner, last_ts FROM {ks}.fences WHERE name = ?"
            ),
            list_fences=session.prepare(f"SELECT name FROM {ks}.fences"),
            create_fence=session.prepare(
                f"INSERT INTO {ks}.fences (name, epoch, owner, last_ts) VALUES (?, 1, ?, ?)"
                " IF NOT EXISTS"
            ),
            # The claim checks last_ts too: the holder may have advanced it since we read
            # it, and a claim stamped below that advance would let the old holder's flush
            # overwrite the new holder's writes.
            claim_fence=session.prepare(
                f"UPDATE {ks}.fences SET epoch = ?, owner = ?, last_ts = ? WHERE name = ?"
                " IF epoch = ? AND last_ts = ?"
            ),
            advance_fence=session.prepare(
                f"UPDATE {ks}.fences SET last_ts = ? WHERE name = ? IF epoch = ?"
            ),
            erase_profile=session.prepare(
                f"DELETE FROM {profiles} USING TIMESTAMP ? WHERE user_id = ?"
            ),
            erase_domains=session.prepare(
                f"DELETE FROM {domains} USING TIMESTAMP ? WHERE user_id = ?"
            ),
            erase_ann=session.prepare(f"DELETE FROM {ann} USING TIMESTAMP ? WHERE user_id = ?"),
            record_erasure=session.prepare(
                f"INSERT INTO {ks}.erasures (user_id, erased_at, reason, before)"
                " VALUES (?, ?, ?, null)"
            ),
            bound_erasure=session.prepare(f"UPDATE {ks}.erasures SET before = ? WHERE user_id = ?"),
            read_setting=session.prepare(f"SELECT value FROM {ks}.settings WHERE key = ?"),
            keep_setting=session.prepare(
                f"INSERT INTO {ks}.settings (key, value) VALUES (?, ?) IF NOT EXISTS"
            ),
            list_ids=session.prepare(f"SELECT user_id FROM {profiles}"),
            nearest={
                horizon: session.prepare(
                    f"SELECT user_id, similarity_cosine({horizon}, ?) FROM {ann}"
                    f" ORDER BY {horizon} ANN OF ? LIMIT ?"
                )
                for horizon in ann_queried
            },
        )
        # Writes with an explicit timestamp are idempotent: sending one twice stores the
        # same cells at the same timestamp.
        for idempotent in (
            statements.write_profile,
            statements.write_domain,
            statements.drop_domain,
            statements.write_ann,
            statements.read_states,
            statements.read_erasures,
            statements.read_fence,
            statements.list_fences,
            statements.erase_profile,
            statements.erase_domains,
            statements.erase_ann,
            statements.record_erasure,
            statements.bound_erasure,
            statements.read_setting,
            statements.list_ids,
        ):
            idempotent.is_idempotent = True
        # A fence is read at SERIAL consistency: it completes any Paxos round in flight,
        # so what it returns is final.
        statements.read_fence.consistency_level = ConsistencyLevel.LOCAL_SERIAL
        for ann_query in statements.nearest.values():
            # Cassandra 5.0 runs ANN only at ONE / LOCAL_ONE and without paging.
            ann_query.consistency_level = ConsistencyLevel.LOCAL_ONE
            ann_query.fetch_size = None
            ann_query.is_idempotent = True
        return statements
