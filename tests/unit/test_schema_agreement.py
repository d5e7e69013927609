"""Opening a Cassandra store reads the schema once the nodes agree on it (store/cassandra)."""

from __future__ import annotations

from typing import Any

import pytest

from interest_stream.store.cassandra.schema import SCHEMA_AGREEMENT_S, read_agreed_schema
from interest_stream.streams.errors import StoreError, StoreRefusedError


class Disagreeing:
    """A cluster whose nodes never agree: the driver's refresh gives up."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, Any]] = []

    def refresh_keyspace_metadata(self, keyspace: str, max_schema_agreement_wait: Any) -> None:
        from cassandra import DriverException

        self.asked.append((keyspace, max_schema_agreement_wait))
        raise DriverException("Schema metadata was not refreshed. See log for details.")


def test_nodes_that_do_not_agree_are_a_retriable_error_not_an_older_layout():
    cluster = Disagreeing()
    with pytest.raises(StoreError, match="do not agree on the schema of ks_a") as raised:
        read_agreed_schema(cluster, "ks_a")  # type: ignore[arg-type]
    assert raised.value.retriable and not isinstance(raised.value, StoreRefusedError)
    assert cluster.asked == [("ks_a", SCHEMA_AGREEMENT_S)]
