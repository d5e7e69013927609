"""The item catalogue on Cassandra (`ItemCatalog`): item texts and vectors in `items`, with
their own SAI vector index, written from the compacted `items` topic."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from interest_stream.store.base import StoredItem
from interest_stream.store.cassandra.connect import (
    Requests,
    describe_error,
    driver_errors,
    refused,
)
from interest_stream.store.cassandra.statements import vector_bytes
from interest_stream.streams.errors import StoreError

if TYPE_CHECKING:
    from cassandra.query import PreparedStatement


def _error(keyspace: str, action: str, exc: BaseException) -> StoreError:
    return StoreError(
        f"Cassandra {action} ({keyspace}): {describe_error(exc)}", retriable=not refused(exc)
    )


class CassandraItems:
    """Items of one keyspace; statements are prepared on first use, so a store that never
    sees items never prepares them."""

    def __init__(self, requests: Requests, keyspace: str, dim: int) -> None:
        self._requests = requests
        self.keyspace = keyspace
        self.dim = dim
        self._prepared: dict[str, PreparedStatement] | None = None

    def _statements(self) -> dict[str, PreparedStatement]:
        """Prepared on first use: a store that never sees items never prepares them."""
        if self._prepared is None:
            table = f"{self.keyspace}.items"
            try:
                prepared = {
                    "read": self._requests.session.prepare(
                        f"SELECT item_id, text, domain, model_id, vector FROM {table}"
                        " WHERE item_id = ?"
                    ),
                    "write": self._requests.session.prepare(
                        f"INSERT INTO {table} (item_id, text, domain, model_id, vector,"
                        " updated_at) VALUES (?, ?, ?, ?, ?, toTimestamp(now()))"
                    ),
                    "delete": self._requests.session.prepare(
                        f"DELETE FROM {table} WHERE item_id = ? IF EXISTS"
                    ),
                    "nearest": self._requests.session.prepare(
                        f"SELECT item_id, text, similarity_cosine(vector, ?) FROM {table}"
                        " ORDER BY vector ANN OF ? LIMIT ?"
                    ),
                }
            except driver_errors() as exc:
                raise _error(self.keyspace, "preparing item statements failed", exc) from exc
            from cassandra import ConsistencyLevel

            prepared["read"].is_idempotent = prepared["write"].is_idempotent = True
            prepared["nearest"].consistency_level = ConsistencyLevel.LOCAL_ONE
            prepared["nearest"].fetch_size = None
            self._prepared = prepared
        return self._prepared

    def get_items(self, item_ids: Sequence[str]) -> dict[str, StoredItem]:
        """Items by id, one concurrent single-partition read each."""
        ids = list(dict.fromkeys(item_ids))
        read = self._statements()["read"]
        found: dict[str, StoredItem] = {}
        for item_id, result in zip(
            ids, self._requests.run([read.bind((i,)) for i in ids]), strict=True
        ):
            if isinstance(result, BaseException):
                raise _error(self.keyspace, f"read of item {item_id!r} failed", result)
            row = result.one()
            if row is not None and row[4] is not None:
                vector = np.asarray(row[4], dtype=np.float32)
                found[item_id] = StoredItem(row[0], row[1], row[2], row[3], vector)
        return found

    def put_items(self, items: Sequence[StoredItem]) -> None:
        """Plain (idempotent) upserts: the `items` topic is compacted, last write wins."""
        write = self._statements()["write"]
        statements = []
        for item in items:
            bound = write.bind((item.item_id, item.text, item.domain, item.model_id, None))
            bound.values[4] = vector_bytes(item.vector, self.dim)
            statements.append(bound)
        for item, result in zip(items, self._requests.run(statements), strict=True):
            if isinstance(result, BaseException):
                raise _error(self.keyspace, f"write of item {item.item_id!r} failed", result)

    def delete_item(self, item_id: str) -> bool:
        try:
            result = self._requests.session.execute(self._statements()["delete"], (item_id,))
        except driver_errors() as exc:
            raise _error(self.keyspace, f"delete of item {item_id!r} failed", exc) from exc
        return bool(result.was_applied)

    def nearest_items(
        self, vector: npt.NDArray[np.floating], *, limit: int = 10
    ) -> list[tuple[str, str, float]]:
        """Items nearest `vector` (SAI ANN at LOCAL_ONE): (item_id, text, cosine)."""
        bound = self._statements()["nearest"].bind([None, None, limit])
        bound.values[0] = bound.values[1] = vector_bytes(vector, self.dim)
        try:
            rows = list(self._requests.session.execute(bound))
        except driver_errors() as exc:
            raise _error(self.keyspace, "item ANN query failed", exc) from exc
        return [(item_id, text, 2.0 * float(sim) - 1.0) for item_id, text, sim in rows]
