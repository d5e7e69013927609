"""Profile stores, chosen by URL: `sqlite:///path.db` (embedded default) or
`cassandra://host1,host2:9042/keyspace`."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from interest_stream.store.base import ApplyResult, ProfileStore, ProfileWrite
from interest_stream.streams.errors import ConfigurationError

if TYPE_CHECKING:
    from interest_stream.store.cassandra.connect import CassandraOptions

__all__ = ["ApplyResult", "ProfileStore", "ProfileWrite", "open_store"]


def open_store(
    url: str,
    *,
    cassandra: CassandraOptions | None = None,
    create_schema: bool = False,
    erasure_key: str | None = None,
) -> ProfileStore:
    """Open the backend the URL names; `cassandra` carries auth, TLS and limits for a
    cassandra:// URL. `create_schema` (tests, local use) creates a missing Cassandra schema."""
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        from interest_stream.store.sqlite import SqliteStore

        return SqliteStore.from_url(url, erasure_key=erasure_key)
    if scheme == "cassandra":
        from interest_stream.store.cassandra import CassandraStore

        return CassandraStore.from_url(url, options=cassandra, create_schema=create_schema)
    raise ConfigurationError(
        f"unsupported store URL {url!r}: use sqlite:///path.db or cassandra://host:9042/keyspace"
    )
