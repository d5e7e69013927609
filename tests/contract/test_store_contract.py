"""One contract, every backend: what the batch core relies on from a `ProfileStore`."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from interest_stream.store import ProfileStore, ProfileWrite
from interest_stream.store.base import (
    EMBEDDED,
    ApplyResult,
    ItemCatalog,
    StoredItem,
    partition_fence,
)
from interest_stream.streams.interest.horizons import InterestParams
from interest_stream.streams.interest.profile import UserProfile, WeightedEvent, fold_events
from tests.contract.conftest import Opener

DIM = 384
PARAMS = InterestParams()
FENCE = partition_fence(3)


@pytest.fixture
def store(opener: Opener) -> ProfileStore:
    return opener()


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


def _write(profile: UserProfile, expected: int = 0, fence: str = FENCE) -> ProfileWrite:
    return ProfileWrite(profile, expected, fence)


def _apply(store: ProfileStore, writes: list[ProfileWrite]) -> ApplyResult:
    """Apply as a writer does: claim the fences, (read,) then write."""
    store.claim({w.fence for w in writes})
    return store.apply(writes)


def _assert_equal(a: UserProfile, b: UserProfile) -> None:
    assert (a.user_id, a.model_id, a.version, a.event_count) == (
        b.user_id,
        b.model_id,
        b.version,
        b.event_count,
    )
    for horizon in ("short", "long"):
        x, y = getattr(a.state, horizon), getattr(b.state, horizon)
        # float32 storage of the decayed sums: 6e-8 relative.
        np.testing.assert_allclose(x.decayed_sum, y.decayed_sum, rtol=1e-6, atol=1e-7)
        assert x.t_ref == y.t_ref and x.weight == y.weight
    assert sorted(a.domains) == sorted(b.domains)
    assert [(e.key, e.ts, e.weight, e.label) for e in a.summary] == [
        (e.key, e.ts, e.weight, e.label) for e in b.summary
    ]
    assert [(c.label, c.members) for c in a.clusters] == [(c.label, c.members) for c in b.clusters]
    for x, y in zip(a.clusters, b.clusters, strict=True):
        np.testing.assert_array_equal(x.centroid, y.centroid)
        assert x.weight == y.weight
    assert dict(a.applied_offsets) == dict(b.applied_offsets)
    assert dict(a.recent_ids) == dict(b.recent_ids)
    assert a.half_lives == b.half_lives and a.forgotten_at == b.forgotten_at


def test_get_returns_what_apply_stored(store: ProfileStore):
    profiles = [_profile(f"u{i}", seed=i) for i in range(3)]
    result = _apply(store, [_write(p) for p in profiles])
    assert sorted(result.won) == ["u0", "u1", "u2"] and result.lost == ()
    assert result.bytes_written > 0
    found = store.get(["u0", "u1", "u2", "nobody"])
    assert sorted(found) == ["u0", "u1", "u2"]
    for p in profiles:
        _assert_equal(found[p.user_id], p)


def test_a_fence_claimed_by_another_writer_makes_the_old_holder_lose(opener: Opener):
    first, second = opener(), opener()
    profile = _profile("u", seed=1)
    assert _apply(first, [_write(profile)]).won == ("u",)
    # A second writer takes the partition over (a rebalance) and writes the user.
    taken = replace(profile, version=profile.version + 1, event_count=99)
    assert _apply(second, [_write(taken, profile.version)]).won == ("u",)
    # The first writer still believes it holds the partition: a claim keeps it...
    assert first.claim({FENCE, EMBEDDED}) == {EMBEDDED}
    # ... and its next write under that partition is lost, whatever it holds.
    stale = replace(profile, version=profile.version + 1, event_count=7)
    result = first.apply([_write(stale, profile.version), _write(_profile("v"), 0, EMBEDDED)])
    assert result.lost == ("u",) and result.won == ("v",)
    assert first.get(["u"])["u"].event_count == 99
    # Once it has claimed again and read again, it writes, and the other one loses.
    assert first.claim({FENCE}) == {FENCE}
    again = replace(taken, version=taken.version + 1, event_count=100)
    assert first.apply([_write(again, taken.version)]).won == ("u",)
    assert second.apply([_write(replace(again, event_count=1), again.version)]).lost == ("u",)
    assert second.get(["u"])["u"].event_count == 100


def test_a_write_under_a_fence_never_claimed_is_lost(store: ProfileStore):
    # Claim, then read: a write must have been folded onto a read made under a claim.
    assert store.apply([_write(_profile("n"))]).lost == ("n",)
    assert store.get(["n"]) == {}
    assert _apply(store, [_write(_profile("n"))]).won == ("n",)


def test_one_writer_keeps_its_fence_across_writes(store: ProfileStore):
    profile = _profile("a")
    assert _apply(store, [_write(profile)]).won == ("a",)
    for step in range(3):
        newer = replace(profile, version=profile.version + step + 1, event_count=step)
        assert _apply(store, [_write(newer, profile.version + step)]).won == ("a",)
    assert store.get(["a"])["a"].event_count == 2


def test_erase_removes_the_profile_records_it_and_fences_the_holder(opener: Opener):
    writer, admin = opener(), opener()
    _apply(writer, [_write(_profile("gone")), _write(_profile("kept"))])
    assert admin.erase("gone", fence=FENCE, at=1.8e9, reason="user-request") is True
    assert admin.erase("gone", fence=FENCE, at=1.8e9, reason="user-request") is False
    assert sorted(writer.get(["gone", "kept"])) == ["kept"]
    assert "gone" not in writer.user_ids()
    erased = writer.erased(["gone", "kept"])
    assert list(erased) == ["gone"] and erased["gone"].at == pytest.approx(1.8e9)
    assert erased["gone"].before == {}
    admin.bound_erasure("gone", {"t-clicks:3": 41, "t-reviews:3": 0}, fence=FENCE)
    assert writer.erased(["gone"])["gone"].before == {"t-clicks:3": 41, "t-reviews:3": 0}
    # The worker that held the partition must read again before it writes there.
    late = replace(_profile("kept", seed=5), version=9)
    assert writer.apply([_write(late, 1)]).lost == ("kept",)


def test_an_erasure_record_keeps_a_keyed_hash_and_a_reason_code(opener: Opener):
    from interest_stream.store.base import ERASURE_KEY_SETTING, erasure_subject

    store = opener()
    store.erase("alice@example.com", fence=EMBEDDED, at=1.7e9, reason="legal-obligation")
    assert "alice@example.com" in store.erased(["alice@example.com", "bob"])
    assert "alice@example.com" in opener().erased(["alice@example.com"])  # the same key
    key = store.setting(ERASURE_KEY_SETTING)
    assert key is not None and len(key) == 64
    # Nothing in the erasure records names the user: only the keyed hash.
    if hasattr(store, "_db"):
        rows = store._db.execute("SELECT user_id, reason FROM erasures").fetchall()
    else:
        rows = list(
            store._session.execute(f"SELECT user_id, reason FROM {store.keyspace}.erasures")
        )
    assert [tuple(r) for r in rows] == [
        (erasure_subject("alice@example.com", key.encode()), "legal-obligation")
    ]
    with pytest.raises(ValueError, match="one of user-request"):
        store.erase("carol", fence=EMBEDDED, at=1.7e9, reason="she asked nicely")


def test_erasing_an_unknown_user_records_it_too(store: ProfileStore):
    assert store.erase("never-seen", fence=EMBEDDED, at=1.7e9, reason="user-request") is False
    assert store.erased(["never-seen"])["never-seen"].at == pytest.approx(1.7e9)


def test_user_ids_lists_sorted(store: ProfileStore):
    _apply(store, [_write(_profile(u)) for u in ("c", "a", "b")])
    assert store.user_ids() == ["a", "b", "c"]
    assert store.user_ids(limit=2) == ["a", "b"]


def test_an_empty_profile_roundtrips(store: ProfileStore):
    empty = replace(UserProfile.new("e", "model-a", DIM), version=1)
    _apply(store, [_write(empty)])
    _assert_equal(store.get(["e"])["e"], empty)


def test_settings_are_kept_once(opener: Opener):
    first, second = opener(), opener()
    assert first.setting("cluster_background:m") is None
    assert first.keep_setting("cluster_background:m", "0.25") == "0.25"
    assert second.keep_setting("cluster_background:m", "0.4") == "0.25"
    assert second.setting("cluster_background:m") == "0.25"


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
