"""The contract suites' fixture: stores opened on each backend in turn."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from interest_stream.store import ProfileStore, open_store

Opener = Callable[[], ProfileStore]


@pytest.fixture(params=["sqlite", pytest.param("cassandra", marks=pytest.mark.cassandra)])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens stores on one backend and place: two of them are two writers (processes)."""
    opened: list[ProfileStore] = []
    if request.param == "sqlite":
        url, create = f"sqlite:///{tmp_path}/profiles.db", False
    else:
        keyspace = request.getfixturevalue("keyspace")
        host, port = request.getfixturevalue("cassandra_contact")
        url, create = f"cassandra://{host}:{port}/{keyspace}", True

    def open_one() -> ProfileStore:
        store = open_store(url, create_schema=create)
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        store.close()
