"""One contract, every backend: what the batch core relies on from a `ProfileStore`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from interest_stream.store import ProfileStore, ProfileWrite, open_store
from interest_stream.store.base import ItemCatalog, StoredItem
from interest_stream.streams.model.horizons import InterestParams
from interest_stream.streams.model.profile import UserProfile, WeightedEvent, fold_events

DIM = 384
PARAMS = InterestParams()


@pytest.fixture(params=["sqlite", pytest.param("cassandra", marks=pytest.mark.cassandra)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ProfileStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/profiles.db"
        opened = open_store(url)
    else:
        keyspace = request.getfixturevalue("keyspace")
        host, port = request.getfixturevalue("cassandra_contact")
        opened = open_store(f"cassandra://{host}:{port}/{keyspace}", create_schema=True)
    yield opened
    opened.close()


def _profile(user_id: str, n: int = 5, seed: int = 0) -> UserProfile:
    rng = np.random.default_rng(seed)
    events = []
    for i in range(n):
        vector = rng.standard_normal(DIM).astype(np.float32)
        vector /= np.linalg.norm(vector)
        events.append(
            WeightedEvent(
                f"{user_id}-{seed}-{i}",
                1.7e9 + 3600 * i,
                (1.0, -1.5)[i % 2],
                f"text {i}",
                vector,
                domain=("movies", None)[i % 2],
                source="clicks:3",
                offset=100 + i,
            )
        )
    return fold_events(
        UserProfile.new(user_id, "model-a", DIM), events, PARAMS, updated_at=1.75e9
    ).profile


def _assert_equal(a: UserProfile, b: UserProfile) -> None:
    assert (a.user_id, a.model_id, a.version, a.event_count) == (
        b.user_id,
        b.model_id,
        b.version,
        b.event_count,
    )
    np.testing.assert_array_equal(a.state.long.decayed_sum, b.state.long.decayed_sum)
    np.testing.assert_array_equal(a.state.short.decayed_sum, b.state.short.decayed_sum)
    assert a.state.long.t_ref == b.state.long.t_ref and a.state.short.weight == b.state.short.weight
    assert sorted(a.domains) == sorted(b.domains)
    assert [(e.event_id, e.text) for e in a.summary] == [(e.event_id, e.text) for e in b.summary]
    assert [c.label for c in a.clusters] == [c.label for c in b.clusters]
    assert dict(a.applied_offsets) == dict(b.applied_offsets)
    assert dict(a.recent_event_ids) == dict(b.recent_event_ids)


def test_get_returns_what_apply_stored(store: ProfileStore):
    profiles = [_profile(f"u{i}", seed=i) for i in range(3)]
    result = store.apply([ProfileWrite(p, 0) for p in profiles])
    assert sorted(result.won) == ["u0", "u1", "u2"] and result.lost == ()
    found = store.get(["u0", "u1", "u2", "nobody"])
    assert sorted(found) == ["u0", "u1", "u2"]
    for p in profiles:
        _assert_equal(found[p.user_id], p)


def test_a_stale_expected_version_loses_and_changes_nothing(store: ProfileStore):
    first = _profile("u", seed=1)
    assert store.apply([ProfileWrite(first, 0)]).won == ("u",)
    # A second writer that also read "absent" must lose the insert race.
    assert store.apply([ProfileWrite(_profile("u", seed=2), 0)]).lost == ("u",)
    newer = replace(first, version=first.version + 1, event_count=99)
    assert store.apply([ProfileWrite(newer, first.version)]).won == ("u",)
    stale = replace(first, version=first.version + 1, event_count=7)
    assert store.apply([ProfileWrite(stale, first.version)]).lost == ("u",)
    assert store.get(["u"])["u"].event_count == 99


def test_one_batch_may_mix_winners_and_losers(store: ProfileStore):
    store.apply([ProfileWrite(_profile("a"), 0)])
    result = store.apply([ProfileWrite(_profile("a", seed=3), 0), ProfileWrite(_profile("b"), 0)])
    assert result.won == ("b",) and result.lost == ("a",)


def test_delete_erases_a_user(store: ProfileStore):
    store.apply([ProfileWrite(_profile("gone"), 0), ProfileWrite(_profile("kept"), 0)])
    assert store.delete("gone") is True
    assert store.delete("gone") is False
    assert sorted(store.get(["gone", "kept"])) == ["kept"]
    assert "gone" not in store.user_ids()


def test_user_ids_lists_sorted(store: ProfileStore):
    store.apply([ProfileWrite(_profile(u), 0) for u in ("c", "a", "b")])
    assert store.user_ids() == ["a", "b", "c"]
    assert store.user_ids(limit=2) == ["a", "b"]


def test_an_empty_profile_roundtrips(store: ProfileStore):
    empty = replace(UserProfile.new("e", "model-a", DIM), version=1)
    store.apply([ProfileWrite(empty, 0)])
    _assert_equal(store.get(["e"])["e"], empty)


def _item(item_id: str, text: str, seed: int) -> StoredItem:
    vector = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return StoredItem(item_id, text, "movies", "model-a", vector / np.linalg.norm(vector))


def test_items_are_upserted_read_and_erased(store: ProfileStore):
    assert isinstance(store, ItemCatalog)
    first, second = _item("i1", "Astronauts stranded on Mars", 1), _item("i2", "Lentil soup", 2)
    store.put_items([first, second])
    store.put_items([_item("i1", "Astronauts stranded on Mars (director's cut)", 3)])
    found = store.get_items(["i1", "i2", "unknown"])
    assert sorted(found) == ["i1", "i2"]
    assert found["i1"].text == "Astronauts stranded on Mars (director's cut)"
    np.testing.assert_allclose(found["i2"].vector, second.vector, rtol=1e-6)
    assert (found["i2"].domain, found["i2"].model_id) == ("movies", "model-a")
    assert store.delete_item("i2") is True
    assert store.get_items(["i2"]) == {}
