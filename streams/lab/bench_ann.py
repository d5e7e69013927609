"""`interest-stream bench ann`: what the SAI vector indexes of the ANN copies cost the store
and how well `similar` finds the nearest users, against an exact scan of the same vectors.

In a scratch keyspace made with the product's schema (dropped afterwards; no Kafka), it writes
`users` copies (short and long unit vectors, as the ANN refresher does: bounded in-flight
single-row inserts) and reads Cassandra's CPU seconds from /proc around the writes (only
the server listening on the measured port), then asks `nearest_users` (what `similar`
runs) for the 10 nearest users of `queries` profile-like vectors and counts how many of
the exact top 10 (numpy, dot product of unit vectors = cosine) it returned. Recall is
read from the in-memory index (memtable), which is where fresh copies are answered from.

`similar` asks the index for ANN_FETCH_FACTOR times the users it returns and keeps the
most similar; recall is reported for factors 1, 2 and 4.

The vectors are a seeded mixture of a few of 200 topic directions plus noise, like
profiles of users with a few interests each. `--similarity cosine` recreates the two
indexes as they were before they compared by dot product, for a like-for-like figure.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import numpy.typing as npt

from interest_stream.store.cassandra.connect import (
    CassandraTarget,
    Requests,
    connect,
    parse_url,
)
from interest_stream.store.cassandra.profiles import CassandraStore
from interest_stream.store.cassandra.schema import ann_options_cql
from interest_stream.store.cassandra.statements import vector_bytes
from interest_stream.streams.lab.pipeline.cpu import CpuMeter
from interest_stream.streams.settings import Settings

DIM = 384
TOPICS = 200
K = 10
FETCHED = (K, 2 * K, 4 * K)
"""Limits `similar` is measured with, keeping the K most similar of what comes back."""
MAX_IN_FLIGHT = 16  # as the ANN refresher's bounded writes; more times out a loaded node


def profile_vectors(rng: np.random.Generator, count: int, topics: npt.NDArray[Any]) -> Any:
    """Unit rows: each a random mix of 3 topic directions plus isotropic noise."""
    mix = np.zeros((count, len(topics)))
    for _ in range(3):
        mix[np.arange(count), rng.integers(0, len(topics), count)] += rng.random(count)
    rows = mix @ topics + 0.05 * rng.standard_normal((count, topics.shape[1]))
    unit = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return unit.astype(np.float32)


def bench_ann(
    settings: Settings,
    *,
    users: int,
    queries: int,
    similarity: str,
    index_options: Mapping[str, str] | None = None,
    seed: int = 7,
) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    topics = rng.standard_normal((TOPICS, DIM))
    topics /= np.linalg.norm(topics, axis=1, keepdims=True)
    short, long = profile_vectors(rng, users, topics), profile_vectors(rng, users, topics)
    asked = profile_vectors(rng, queries, topics)
    # Cassandra only (pipeline/scratch.py would also make Kafka topics).
    contact = parse_url(settings.store_url)
    target = CassandraTarget(contact.hosts, contact.port, f"bench_ann_{uuid.uuid4().hex[:8]}")
    # Fetch factor 1: the limits below are asked for as they are (FETCHED).
    options = replace(settings.cassandra_options(), ann_fetch_factor=1)
    store = CassandraStore.from_url(f"cassandra://{target}", options=options, create_schema=True)
    try:
        cluster, session = connect(target, options)
        try:
            cpu, seconds, failed = _write_copies(
                session, target, similarity, dict(index_options or {}), short, long
            )
            exact = np.argsort(-(asked @ long.T), axis=1)[:, :K]
            # Asking the index for more than K and keeping the K most similar widens its
            # search (the beam grows with the limit): recall for a few such limits.
            found = dict.fromkeys(FETCHED, 0)
            for query, truth in zip(asked, exact, strict=True):
                for fetched in FETCHED:
                    # nearest_users sorts by similarity: its first K are the K most similar.
                    top = store.nearest_users(query, horizon="long", limit=fetched)[:K]
                    found[fetched] += len({int(u[1:]) for u, _ in top} & set(truth.tolist()))
        finally:
            session.execute(f"DROP KEYSPACE IF EXISTS {target.keyspace}", timeout=120)
            cluster.shutdown()
    finally:
        store.close()
    return {
        "similarity": similarity,
        # Those the indexes were made with: recreated with these, else the settings'.
        "index_options": dict(index_options or options.ann_index_options),
        "users": users,
        "queries": queries,
        "failed_writes": failed,
        "write_seconds": round(seconds, 2),
        "cassandra_cpu_s_per_1000_copies": None if cpu is None else round(1000 * cpu / users, 3),
        "recall_at_10": round(found[K] / (K * queries), 4),
        "recall_at_10_fetching": {
            str(fetched): round(count / (K * queries), 4) for fetched, count in found.items()
        },
    }


def _write_copies(
    session: Any,
    target: CassandraTarget,
    similarity: str,
    index_options: dict[str, str],
    short: npt.NDArray[np.float32],
    long: npt.NDArray[np.float32],
) -> tuple[float | None, float, int]:
    """Write the copies; Cassandra's CPU seconds (None if not on this machine), the
    seconds the writes took and how many failed."""
    keyspace = target.keyspace
    if similarity != "schema" or index_options:
        function = "dot_product" if similarity == "schema" else similarity
        text = f"'similarity_function': '{function}'{ann_options_cql(index_options)}"
        for horizon in ("short", "long"):
            session.execute(f"DROP INDEX IF EXISTS {keyspace}.profile_ann_{horizon}", timeout=120)
            session.execute(
                f"CREATE CUSTOM INDEX profile_ann_{horizon} ON {keyspace}.profile_ann"
                f" ({horizon}) USING 'StorageAttachedIndex' WITH OPTIONS = {{{text}}}",
                timeout=120,
            )
    insert = session.prepare(
        f"INSERT INTO {keyspace}.profile_ann (user_id, version, short, long) VALUES (?, 1, ?, ?)"
    )
    statements = []
    for i in range(len(short)):
        bound = insert.bind([f"u{i}", None, None])
        bound.values[1] = vector_bytes(short[i], DIM)
        bound.values[2] = vector_bytes(long[i], DIM)
        statements.append(bound)
    meter = CpuMeter([], {target.port})
    meter.start()
    started = time.perf_counter()
    results = Requests(session, MAX_IN_FLIGHT).run(statements)
    seconds = time.perf_counter() - started
    cpu = meter.stop().get("cassandra")
    return cpu, seconds, sum(isinstance(r, BaseException) for r in results)
