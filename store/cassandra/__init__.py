"""The Cassandra backend, one concern a module: `connect` (URLs, TLS, auth, the driver
session and bounded concurrent requests), `schema` (DDL and layout checks), `statements`
(prepared statements, vector binding), `profiles` (the store and its fence protocol),
`items` (the item catalogue) and `ann` (the SAI-indexed copies for nearest-neighbour
queries). The driver (`cassandra-driver`, extra `cassandra`) is imported only when a store
is opened.
"""

from interest_stream.store.cassandra.connect import (
    DEFAULT_KEYSPACE,
    DEFAULT_PORT,
    CassandraOptions,
    CassandraTarget,
    checked_keyspace,
    connect,
    describe_error,
    driver_errors,
    parse_url,
)
from interest_stream.store.cassandra.profiles import CassandraStore
from interest_stream.store.cassandra.schema import (
    DEFAULT_DIM,
    LOCAL_REPLICATION,
    SchemaReport,
    ensure_schema,
    replication_map,
    schema_statements,
    table_dim,
)
from interest_stream.store.cassandra.statements import vector_bytes

__all__ = [
    "DEFAULT_DIM",
    "DEFAULT_KEYSPACE",
    "DEFAULT_PORT",
    "LOCAL_REPLICATION",
    "CassandraOptions",
    "CassandraStore",
    "CassandraTarget",
    "SchemaReport",
    "checked_keyspace",
    "connect",
    "describe_error",
    "driver_errors",
    "ensure_schema",
    "parse_url",
    "replication_map",
    "schema_statements",
    "table_dim",
    "vector_bytes",
]
