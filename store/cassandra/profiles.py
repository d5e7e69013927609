"""Cassandra profile store: `ProfileStore` over `profiles` and the tables that go with it.

The production backend. Every profile write is one lightweight transaction on the user's
`profiles` row fenced by the stored version (INSERT IF NOT EXISTS for a new user, UPDATE
IF version = ? otherwise), run concurrently with a bounded number of requests in flight.
That row holds what readers query (the current vectors, weights, clusters, applied
offsets) and the fence: `version` and the `write_id` of the write that stored it. The
lossless profile (the profile codec: the event summary and the recent event ids) is too
large to carry through Paxos, which writes its payload several times: it goes first, as a
plain write, to an immutable `profile_states` row keyed (user_id, version, write_id), and
the LWT then makes it current by storing its `write_id`. `get` reads the fence and the
user's state rows side by side and decodes the state the fence names. After a won write,
older states are deleted (one range tombstone) and the per-domain rows follow; a lost write
deletes its own state row. The SAI vector indexes behind `nearest_users` are on
`profile_ann`, copies of the profile vectors written in the background and only once a
profile has moved away from its copy (ann.py): inserting into a vector index was the
largest measured cost of a write.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from interest_stream.store.base import ApplyResult, ProfileWrite, StoredItem
from interest_stream.store.cassandra.ann import AnnCopy, AnnRefresher
from interest_stream.store.cassandra.connect import (
    CassandraOptions,
    Requests,
    checked_keyspace,
    connect,
    describe_error,
    driver_errors,
    parse_url,
    require_driver,
)
from interest_stream.store.cassandra.items import CassandraItems
from interest_stream.store.cassandra.schema import check_layout, ensure_schema, table_dim
from interest_stream.store.cassandra.statements import (
    DOMAIN_COLUMNS,
    PROFILE_COLUMNS,
    Horizon,
    Statements,
    bind_vectors,
    vector_bytes,
)
from interest_stream.streams.errors import StoreError
from interest_stream.streams.model.codec import decode_profile, encode_profile
from interest_stream.streams.model.profile import UserProfile

if TYPE_CHECKING:
    from cassandra.cluster import Cluster, ResultSet, Session
    from cassandra.query import BoundStatement, Statement

log = logging.getLogger(__name__)

_FOLLOW_UP_ATTEMPTS = 3
_STATE_READ_ATTEMPTS = 5

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
        self,
        cluster: Cluster,
        session: Session,
        keyspace: str,
        options: CassandraOptions | None = None,
    ) -> None:
        options = options or CassandraOptions()
        self.keyspace = checked_keyspace(keyspace)
        self._cluster = cluster
        self._session = session
        # One bound for every thread of this store (batches and the ANN refresher).
        self._requests = Requests(session, options.max_in_flight)
        self._ann = AnnRefresher(self._write_ann_copies, min_cosine=options.ann_refresh_cosine)
        dim = table_dim(cluster, self.keyspace)
        if dim is None:
            raise StoreError(
                f"keyspace {self.keyspace} has no profiles table: run"
                f" `interest-stream init --cassandra` (or open the store with create_schema)"
            )
        self.dim = dim
        self._items = CassandraItems(self._requests, self.keyspace, dim)
        check_layout(cluster, self.keyspace)
        try:
            self._statements = Statements.prepare(session, self.keyspace)
        except driver_errors() as exc:
            raise StoreError(
                f"cannot prepare statements on {self.keyspace}: {describe_error(exc)}"
            ) from exc

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        options: CassandraOptions | None = None,
        create_schema: bool = False,
    ) -> CassandraStore:
        """Connect to `cassandra://host1,host2:9042/keyspace`.

        `create_schema` creates what is missing (SimpleStrategy, one replica, if the
        keyspace itself is missing): for tests and local use; production runs
        `interest-stream init --cassandra` with its replication instead.
        """
        require_driver()
        target = parse_url(url)
        cluster, session = connect(target, options)
        try:
            if create_schema:
                ensure_schema(cluster, session, target.keyspace)
            return cls(cluster, session, target.keyspace, options)
        except BaseException:
            cluster.shutdown()
            raise

    # -- helpers ---------------------------------------------------------------------------

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
        columns = [values.get(column) for column in PROFILE_COLUMNS]  # vectors: None here
        vectors = {"short": state.short.profile(), "long": state.long.profile()}
        slots = {PROFILE_COLUMNS.index(name): vector for name, vector in vectors.items()}
        if write.expected_version == 0 or not fenced:
            # INSERT markers: user_id, then the columns.
            return bind_vectors(
                self._statements.insert if fenced else self._statements.insert_unfenced,
                [profile.user_id, *columns],
                {index + 1: vector for index, vector in slots.items()},
                self.dim,
            )
        # UPDATE markers: the SET columns, user_id, then the expected version of the IF.
        return bind_vectors(
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
                DOMAIN_COLUMNS.index("short"): interests.short.profile(),
                DOMAIN_COLUMNS.index("long"): interests.long.profile(),
            }
            ordered = [values.get(column) for column in DOMAIN_COLUMNS]
            rows.append(bind_vectors(self._statements.write_domain, ordered, vectors, self.dim))
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
        for (write, write_id), result in zip(uncertain, self._requests.run(reads), strict=True):
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
                None,  # vectors: pre-serialized by bind_vectors
                None,
            ]
            vectors = {4: copy.vectors[0], 5: copy.vectors[1]}
            statements.append(bind_vectors(self._statements.write_ann, values, vectors, self.dim))
        return [r if isinstance(r, BaseException) else None for r in self._requests.run(statements)]

    def _write_retried(self, pending: list[tuple[str, Statement]], what: str) -> None:
        """Run idempotent writes, retrying the failed ones; StoreError naming `what` and
        the users if some still fail."""
        for attempt in range(1, _FOLLOW_UP_ATTEMPTS + 1):
            results = self._requests.run([statement for _, statement in pending])
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
        return self._requests.run(statements)

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
            results = self._requests.run(reads)
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

    # -- items (ItemCatalog), kept in the same keyspace ------------------------------------

    def get_items(self, item_ids: Sequence[str]) -> dict[str, StoredItem]:
        return self._items.get_items(item_ids)

    def put_items(self, items: Sequence[StoredItem]) -> None:
        self._items.put_items(items)

    def delete_item(self, item_id: str) -> bool:
        return self._items.delete_item(item_id)

    def nearest_items(
        self, vector: npt.NDArray[np.floating], *, limit: int = 10
    ) -> list[tuple[str, str, float]]:
        return self._items.nearest_items(vector, limit=limit)
