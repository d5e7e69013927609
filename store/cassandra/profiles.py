"""Cassandra profile store: `ProfileStore` over `profiles` and the tables that go with it.

The production backend. A flush (`apply`) costs one lightweight transaction per input
partition it touches (the fence check, fences.py) and one single-partition, unlogged batch
per user: the `profiles` row (reader columns and the whole bounded profile in `state`)
with the per-domain rows the flush changed, all `USING TIMESTAMP` of the fence. No read
before writing: a worker folds onto the profiles it stored last (its cache), and the fence,
not a per-user compare-and-set, keeps a writer that lost its partition from overwriting its
successor. Reads (`get`, `erased`) are `IN` queries of up to 64 users each, sent
concurrently with a bound on requests in flight.

The SAI vector indexes behind `nearest_users` are on `profile_ann`, copies of the profile
vectors written in the background and only once a profile has moved away from its copy
(ann.py): inserting into a vector index was the largest measured cost of a write.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from interest_stream.store.base import (
    ALL_FENCES,
    ApplyResult,
    ErasureRecord,
    ProfileWrite,
    StoredItem,
    check_reason,
    erasure_key,
    erasure_subject,
)
from interest_stream.store.cassandra.ann import AnnCopy, AnnRefresher
from interest_stream.store.cassandra.connect import (
    CassandraOptions,
    Requests,
    checked_keyspace,
    connect,
    describe_error,
    driver_errors,
    parse_url,
    refused,
    require_driver,
)
from interest_stream.store.cassandra.fences import Fences, clock_us
from interest_stream.store.cassandra.items import CassandraItems
from interest_stream.store.cassandra.schema import (
    check_layout,
    ensure_schema,
    indexed_horizons,
    read_agreed_schema,
    table_dim,
)
from interest_stream.store.cassandra.statements import (
    DOMAIN_COLUMNS,
    HORIZONS,
    PROFILE_COLUMNS,
    READ_CHUNK,
    Horizon,
    Statements,
    bind_vectors,
    vector_bytes,
)
from interest_stream.streams.errors import StoreError, StoreRefusedError
from interest_stream.streams.interest.codec import (
    ProfileFormatError,
    decode_profile,
    encode_profile,
)
from interest_stream.streams.interest.profile import UserProfile

if TYPE_CHECKING:
    from cassandra.cluster import Cluster, Session
    from cassandra.query import Statement

log = logging.getLogger(__name__)

_WRITE_ATTEMPTS = 3
MAX_ANN_FETCH = 1000
"""The most rows one `nearest_users` query asks the index for, whatever the fetch factor
(and so the most it returns): Cassandra 5.0 refuses ANN queries with a larger limit."""


class CassandraStore:
    """`ProfileStore` (and `ItemCatalog`) over a Cassandra keyspace; see the module doc.

    Failed writes are retried a few times: they are idempotent (explicit timestamps), so
    sending one again stores the same cells. If they still fail, `apply` raises StoreError
    and the caller must not acknowledge the batch; the fences it holds stay valid.
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
        self._ann_fetch_factor = options.ann_fetch_factor
        self._configured_key = (
            options.erasure_key.get_secret_value() if options.erasure_key is not None else None
        )
        self._key: bytes | None = None
        read_agreed_schema(cluster, self.keyspace)
        dim = table_dim(cluster, self.keyspace)
        if dim is None:
            raise StoreRefusedError(
                f"keyspace {self.keyspace} has no profiles table: run"
                f" `interest-stream init --cassandra` (or open the store with create_schema)"
            )
        self.dim = dim
        check_layout(cluster, self.keyspace)
        # The keyspace's indexes (read once), not the settings, say which copy columns are
        # written, queried and refresh a copy; with none (mid-rebuild) both are written.
        self.ann_horizons = indexed_horizons(cluster, self.keyspace)
        self._ann_written = self.ann_horizons or HORIZONS
        self._ann = AnnRefresher(
            self._write_ann_copies,
            min_cosine=options.ann_refresh_cosine,
            min_interval_s=options.ann_refresh_interval_s,
            horizons=self._ann_written,
        )
        self._ann_copies = options.ann_copies
        self._items = CassandraItems(self._requests, self.keyspace, dim)
        try:
            written, queried = self._ann_written, self.ann_horizons
            self._statements = Statements.prepare(
                session, self.keyspace, ann_written=written, ann_queried=queried
            )
        except driver_errors() as exc:
            raise StoreError(
                f"cannot prepare statements on {self.keyspace}: {describe_error(exc)}"
            ) from exc
        self.fences = Fences(self._requests, self._statements, self.keyspace)

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
                given = options or CassandraOptions()
                ensure_schema(
                    cluster,
                    session,
                    target.keyspace,
                    ann_index_options=dict(given.ann_index_options),
                    ann_horizons=given.ann_horizons,
                )
            return cls(cluster, session, target.keyspace, options)
        except BaseException:
            cluster.shutdown()
            raise

    def _error(self, action: str, exc: BaseException) -> StoreError:
        return StoreError(
            f"Cassandra {action} ({self.keyspace}): {describe_error(exc)}",
            retriable=not refused(exc),
        )

    # -- reads -----------------------------------------------------------------------------

    def _read_in(self, prepared: Any, keys: Sequence[str], what: str) -> list[Any]:
        """Rows of an `IN (?, ... READ_CHUNK)` query over distinct keys (short chunks are
        padded with their last key; duplicate keys in IN return the row once)."""
        ids = list(dict.fromkeys(keys))
        chunks = [ids[i : i + READ_CHUNK] for i in range(0, len(ids), READ_CHUNK)]
        statements = [
            prepared.bind(chunk + [chunk[-1]] * (READ_CHUNK - len(chunk))) for chunk in chunks
        ]
        rows: list[Any] = []
        for chunk, result in zip(chunks, self._requests.run(statements), strict=True):
            if isinstance(result, BaseException):
                raise self._error(f"read of {what} for {len(chunk)} users", result)
            rows.extend(result)
        return rows

    def get(self, user_ids: Sequence[str]) -> dict[str, UserProfile]:
        found: dict[str, UserProfile] = {}
        rows = self._read_in(self._statements.read_states, user_ids, "profiles")
        for user_id, state, short, long in rows:
            if state is None or user_id in found:
                continue
            try:
                found[user_id] = decode_profile(state, horizons=(short, long))
            except ProfileFormatError as exc:
                raise StoreRefusedError(
                    f"Cassandra ({self.keyspace}), user {user_id!r}: {exc}"
                ) from exc
        return found

    def _claim_away(self, fence: str, why: str) -> int:
        """Claim `fence` (ALL_FENCES: every one) from its holder; the timestamp to write
        with, above every one handed out under it."""
        try:
            names = self.fences.names() if fence == ALL_FENCES else [fence]
            return max((self.fences.claim_away(name) for name in names), default=clock_us())
        except driver_errors() as exc:
            raise self._error(f"fence claim for {why}", exc) from exc

    def _subject(self, user_id: str) -> str:
        """The erasure records' key for `user_id` (see store/base.py)."""
        if self._key is None:
            self._key = erasure_key(self._configured_key, self.keep_setting)
        return erasure_subject(user_id, self._key)

    def erased(self, user_ids: Sequence[str]) -> dict[str, ErasureRecord]:
        subjects = {self._subject(u): u for u in user_ids}
        rows = self._read_in(self._statements.read_erasures, list(subjects), "erasures")
        # The driver returns naive datetimes in UTC.
        return {
            subjects[subject]: ErasureRecord(at.replace(tzinfo=UTC).timestamp(), dict(before or {}))
            for subject, at, before in rows
            if at is not None and subject in subjects
        }

    def bound_erasure(self, user_id: str, before: Mapping[str, int], *, fence: str) -> None:
        self._claim_away(fence, f"bounding the erasure of {user_id!r}")
        statement = self._statements.bound_erasure.bind((dict(before), self._subject(user_id)))
        self._write_retried([(user_id, statement)])

    # -- writes ----------------------------------------------------------------------------

    def claim(self, fences: Collection[str]) -> set[str]:
        try:
            return self.fences.claim(set(fences))
        except driver_errors() as exc:
            self.fences.forget()
            raise self._error("fence claim", exc) from exc

    def apply(self, writes: Sequence[ProfileWrite]) -> ApplyResult:
        """Store each profile under its fence's timestamp; writes under a fence that was
        claimed away are lost (see fences.py)."""
        users = [w.profile.user_id for w in writes]
        if len(set(users)) != len(users):
            raise ValueError("apply got several writes for one user: write each user once")
        if not writes:
            return ApplyResult((), ())
        try:
            stamps = self.fences.timestamps({w.fence for w in writes})
        except driver_errors() as exc:
            self.fences.forget()
            raise self._error("fence check", exc) from exc
        winners = [(w, stamps[w.fence]) for w in writes if stamps[w.fence] is not None]
        statements: list[tuple[str, Statement]] = []
        written = 0
        for write, stamp in winners:
            assert stamp is not None
            batch, size = self._profile_batch(write, stamp)
            statements.append((write.profile.user_id, batch))
            written += size
        self._write_retried(statements)
        if self._ann_copies:
            self._ann.offer([(w.profile, s) for w, s in winners if s is not None])
        won = {w.profile.user_id for w, _ in winners}
        return ApplyResult(
            tuple(u for u in users if u in won), tuple(u for u in users if u not in won), written
        )

    def _profile_batch(self, write: ProfileWrite, stamp: int) -> tuple[Statement, int]:
        """One unlogged batch on the user's partition: the profile row and the changed
        per-domain rows, all at the fence's timestamp; and the bytes it carries."""
        from cassandra.query import BatchStatement, BatchType

        profile = write.profile
        if profile.dim != self.dim:
            raise StoreRefusedError(
                f"profile of {profile.user_id!r} has {profile.dim} dimensions but"
                f" {self.keyspace}.profiles stores vector<float, {self.dim}>"
            )
        state = profile.state
        # The horizons' unit vectors are the row's `short` and `long` columns: the blob
        # carries only their norms (same row, so written and read together).
        blob = encode_profile(profile, horizons_apart=True)
        values: dict[str, Any] = {
            "version": profile.version,
            "model_id": profile.model_id,
            # The driver reads a number bound to a timestamp column as milliseconds.
            "updated_at": round(profile.updated_at * 1000),
            "event_count": profile.event_count,
            "short_weight": state.short.weight,
            "long_weight": state.long.weight,
            "t_ref": state.long.t_ref,
            "half_lives": list(profile.half_lives),
            "cluster_labels": [c.label for c in profile.liked],
            "cluster_weights": [c.weight for c in profile.liked],
            "disliked_labels": [c.label for c in profile.disliked],
            "applied_offsets": dict(profile.applied_offsets),
            "state": blob,
        }
        row = [profile.user_id, *(values.get(c) for c in PROFILE_COLUMNS), stamp]
        vectors = {1 + PROFILE_COLUMNS.index("short"): state.short.profile()}
        vectors[1 + PROFILE_COLUMNS.index("long")] = state.long.profile()
        batch = BatchStatement(batch_type=BatchType.UNLOGGED)
        batch.add(bind_vectors(self._statements.write_profile, row, vectors, self.dim))
        size = len(blob) + 8 * self.dim
        changed = (
            sorted(profile.domains) if write.domains_changed is None else write.domains_changed
        )
        for domain in changed:
            interests = profile.domains.get(domain)
            if interests is None:
                continue
            cells = {
                "user_id": profile.user_id,
                "domain": domain,
                "version": profile.version,
                "updated_at": round(profile.updated_at * 1000),
                "short_weight": interests.short.weight,
                "long_weight": interests.long.weight,
                "t_ref": interests.long.t_ref,
            }
            domain_vectors = {
                DOMAIN_COLUMNS.index("short"): interests.short.profile(),
                DOMAIN_COLUMNS.index("long"): interests.long.profile(),
            }
            ordered = [*(cells.get(c) for c in DOMAIN_COLUMNS), stamp]
            batch.add(
                bind_vectors(self._statements.write_domain, ordered, domain_vectors, self.dim)
            )
            size += 8 * self.dim
        for domain in write.domains_dropped:
            batch.add(self._statements.drop_domain.bind((stamp, profile.user_id, domain)))
        batch.is_idempotent = True
        return batch, size

    def _write_retried(self, pending: list[tuple[str, Statement]]) -> None:
        """Run idempotent writes, retrying the failed ones; StoreError naming the users if
        some still fail."""
        for attempt in range(1, _WRITE_ATTEMPTS + 1):
            results = self._requests.run([statement for _, statement in pending])
            failed = [
                (item, r)
                for item, r in zip(pending, results, strict=True)
                if isinstance(r, BaseException)
            ]
            if not failed:
                return
            if attempt == _WRITE_ATTEMPTS or any(refused(r) for _, r in failed):
                users = sorted({user_id for (user_id, _), _ in failed})
                raise self._error(
                    f"profile writes failed for {len(users)} users ({', '.join(users[:5])})",
                    failed[0][1],
                )
            log.warning(
                "%d profile writes failed, retrying: %s",
                len(failed),
                describe_error(failed[0][1]),
            )
            pending = [item for item, _ in failed]

    def _write_ann_copies(self, copies: Sequence[AnnCopy]) -> list[BaseException | None]:
        """The ANN refresher's writer (its own thread): one write per copy, at the
        timestamp of the profile write it copies."""
        statements = []
        written = self._ann_written
        for copy in copies:
            values = [copy.user_id, copy.version, copy.model_id, round(copy.updated_at * 1000)]
            # The indexed horizons' vectors, pre-serialized by bind_vectors.
            vectors = {4 + i: copy.vectors[HORIZONS.index(h)] for i, h in enumerate(written)}
            values += [None] * len(written) + [copy.ts]
            statements.append(bind_vectors(self._statements.write_ann, values, vectors, self.dim))
        return [r if isinstance(r, BaseException) else None for r in self._requests.run(statements)]

    def erase(self, user_id: str, *, fence: str, at: float, reason: str) -> bool:
        """Delete the user's profile, domain rows and ANN copies at a timestamp claimed
        from the user's fence (so no write of the current holder can land after them), and
        record the erasure."""
        subject = self._subject(user_id)
        check_reason(reason)
        self._ann.forget(user_id)  # no copy of this user may be queued behind the delete
        existed = user_id in self.get([user_id])
        stamp = self._claim_away(fence, f"erasing {user_id!r}")
        statements: list[tuple[str, Statement]] = [
            (user_id, self._statements.erase_profile.bind((stamp, user_id))),
            (user_id, self._statements.erase_domains.bind((stamp, user_id))),
            (user_id, self._statements.erase_ann.bind((stamp, user_id))),
            (
                user_id,
                self._statements.record_erasure.bind((subject, round(at * 1000), reason)),
            ),
        ]
        self._write_retried(statements)
        return existed

    # -- listings, settings ----------------------------------------------------------------

    def user_ids(self, limit: int | None = None) -> list[str]:
        """All user ids, sorted: a full, paged table scan, sorted in Python (Cassandra
        orders partitions by token). For listings and tests, not for hot paths."""
        try:
            ids = sorted(row[0] for row in self._session.execute(self._statements.list_ids))
        except driver_errors() as exc:
            raise self._error("scan of user ids failed", exc) from exc
        return ids[:limit] if limit else ids

    def setting(self, key: str) -> str | None:
        result = self._requests.run([self._statements.read_setting.bind((key,))])[0]
        if isinstance(result, BaseException):
            raise self._error(f"read of setting {key}", result)
        row = result.one()
        return None if row is None else str(row[0])

    def keep_setting(self, key: str, value: str) -> str:
        result = self._requests.run([self._statements.keep_setting.bind((key, value))])[0]
        if isinstance(result, BaseException):
            raise self._error(f"write of setting {key}", result)
        if result.was_applied:
            return value
        kept = self.setting(key)
        return value if kept is None else kept

    def flush_ann(self, timeout: float = 60.0) -> bool:
        """Wait until the ANN copies of every stored profile are written (see ann.py);
        False if `timeout` ran out first."""
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
        if horizon not in HORIZONS:
            raise ValueError(f"horizon must be 'short' or 'long', not {horizon!r}")
        if horizon not in self._statements.nearest:
            raise StoreRefusedError(
                f"keyspace {self.keyspace} has no vector index on profile_ann.{horizon}"
                f" (it indexes: {', '.join(self.ann_horizons) or 'none'}): run `init` with"
                f" ANN_HORIZONS listing {horizon}, then restart this process"
            )
        packed = vector_bytes(vector, self.dim)
        # The index's search widens with the limit: asking for more and keeping the most
        # similar (each similarity is exact, computed from the stored copy) finds more of
        # the true nearest (bench ann); the cost is the wider search and the extra rows.
        fetch = min(max(limit, limit * self._ann_fetch_factor), MAX_ANN_FETCH)
        bound = self._statements.nearest[horizon].bind([None, None, fetch])
        bound.values[0] = bound.values[1] = packed
        try:
            rows = list(self._session.execute(bound))
        except driver_errors() as exc:
            raise self._error("ANN query failed", exc) from exc
        # similarity_cosine is (1 + cos) / 2; callers think in cosines.
        found = [(user_id, 2.0 * float(similarity) - 1.0) for user_id, similarity in rows]
        found.sort(key=lambda hit: (-hit[1], hit[0]))
        return found[:limit]

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
