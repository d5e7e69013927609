"""Profile stores, chosen by URL: `sqlite:///path.db` (embedded default) or
`cassandra://host1,host2:9042/keyspace`."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from store.base import ApplyResult, ProfileStore, ProfileWrite
from streams.errors import ConfigurationError

__all__ = ["ApplyResult", "ProfileStore", "ProfileWrite", "open_store"]


def open_store(url: str, **options: Any) -> ProfileStore:
    """Open the backend the URL names; options go to the backend (e.g. Cassandra auth)."""
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        from store.sqlite import SqliteStore

        return SqliteStore.from_url(url)
    if scheme == "cassandra":
        from store.cassandra import CassandraStore

        return CassandraStore.from_url(url, **options)
    raise ConfigurationError(
        f"unsupported store URL {url!r}: use sqlite:///path.db or cassandra://host:9042/keyspace"
    )
