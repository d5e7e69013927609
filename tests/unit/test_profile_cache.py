"""The in-process profile cache: LRU behaviour, and the core staying exact when it is stale."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from interest_stream.encoders.hashing import HashingEncoder
from interest_stream.schemas.records import RawRecord
from interest_stream.store.sqlite import SqliteStore
from interest_stream.streams.core.batch import BatchCore
from interest_stream.streams.core.profile_cache import ProfileCache
from interest_stream.streams.demo import generate
from interest_stream.streams.interest.profile import UserProfile

NOW = 1_800_000_000.0


def _profile(user_id: str, version: int = 1) -> UserProfile:
    return UserProfile(user_id, "m", 4, version=version)


def test_the_least_recently_used_profile_leaves_first():
    cache = ProfileCache(2)
    cache.put({"a": _profile("a"), "b": _profile("b")})
    found, missing = cache.lookup(["a", "c"])  # touches a
    assert list(found) == ["a"] and missing == ["c"]
    cache.put({"c": _profile("c")})
    found, missing = cache.lookup(["a", "b", "c"])
    assert sorted(found) == ["a", "c"] and missing == ["b"]
    assert (cache.hits, cache.misses) == (3, 2)


def test_drop_invalidate_and_a_zero_capacity_keep_nothing():
    cache = ProfileCache(10)
    cache.put({"a": _profile("a"), "b": _profile("b", 2)})
    cache.drop(["a", "unknown"])
    assert cache.lookup(["a", "b"])[1] == ["a"]
    cache.invalidate()
    assert len(cache) == 1  # emptied only at the next lookup, by the thread that owns it
    assert cache.lookup(["b"]) == ({}, ["b"]) and len(cache) == 0
    off = ProfileCache(0)
    off.put({"a": _profile("a")})
    assert len(off) == 0
    with pytest.raises(ValueError):
        ProfileCache(-1)


class CountingStore(SqliteStore):
    """SQLite store that counts the profiles it was asked to read."""

    reads = 0

    def get(self, user_ids: Sequence[str]) -> dict[str, UserProfile]:
        self.reads += len(user_ids)
        return super().get(user_ids)


def _core(path: Path, cache: int) -> BatchCore:
    return BatchCore(
        encoder=HashingEncoder(),
        store=CountingStore(path),
        profile_cache_size=cache,
        clock=lambda: NOW,
    )


def _records(events: list[dict]) -> list[RawRecord]:
    return [RawRecord.at(json.dumps(e).encode(), "topic:0", i) for i, e in enumerate(events, 1)]


def test_a_sole_writer_reads_each_profile_once(tmp_path: Path):
    records = _records(generate(users=6, events_per_user=30, seed=8).events)
    core = _core(tmp_path / "p.db", cache=100)
    for start in range(0, len(records), 20):
        outcome = core.process(records[start : start + 20])
        assert outcome.lost_fences == 0
    store = core.store
    assert isinstance(store, CountingStore)
    assert store.reads == 6  # a first read per user (none stored yet), then the cache
    assert core.cache.hits > 0


@pytest.mark.parametrize("seed", range(6))
def test_two_cached_writers_trading_users_end_at_a_single_pass(tmp_path: Path, seed: int):
    """Two workers take turns on the same partition, as rebalances do, and sometimes get
    records again that the other already applied (uncommitted offsets). Their caches go
    stale; the version fence and dedup must still give exactly one clean pass."""
    events = generate(users=4, events_per_user=40, seed=seed, duplicates=0.05).events
    records = _records(events)
    oracle = _core(tmp_path / "oracle.db", cache=0)
    oracle.process(records)
    expected = oracle.store.get(oracle.store.user_ids())

    path = tmp_path / "shared.db"
    workers = [_core(path, cache=100), _core(path, cache=100)]
    rng = random.Random(seed)
    position, lost = 0, 0
    while position < len(records):
        worker = rng.choice(workers)
        size = rng.randint(5, 30)
        replay = rng.randint(0, min(position, 25))  # redelivered from before `position`
        outcome = worker.process(records[position - replay : position + size])
        lost += outcome.lost_fences
        position += size
    assert lost > 0  # stale caches really were fenced off
    got = workers[0].store.get(workers[0].store.user_ids())
    assert got.keys() == expected.keys()
    for user_id, want in expected.items():
        have = got[user_id]
        assert have.event_count == want.event_count
        assert have.applied_offsets == want.applied_offsets
        for horizon in ("short", "long"):
            np.testing.assert_allclose(
                getattr(have.state, horizon).decayed_sum,
                getattr(want.state, horizon).decayed_sum,
                atol=1e-6,
            )
