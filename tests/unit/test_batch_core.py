"""The batch core end to end over SQLite with the model-free hashing encoder."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from interest_stream.encoders.hashing import HashingEncoder
from interest_stream.schemas.records import RawRecord
from interest_stream.store import ProfileWrite, open_store
from interest_stream.store.base import EMBEDDED
from interest_stream.store.sqlite import SqliteStore
from interest_stream.streams.core.batch import BatchCore
from interest_stream.streams.demo import generate
from interest_stream.streams.interest.profile import UserProfile

NOW = 1_800_000_000.0


def _core(path: Path) -> BatchCore:
    return BatchCore(
        encoder=HashingEncoder(), store=open_store(f"sqlite:///{path}"), clock=lambda: NOW
    )


def _records(events: list[dict], source: str = "s") -> list[RawRecord]:
    return [RawRecord.at(json.dumps(e).encode(), source, i) for i, e in enumerate(events, 1)]


def _run(core: BatchCore, records: list[RawRecord], batch: int = 50) -> None:
    for start in range(0, len(records), batch):
        core.process(records[start : start + batch])


def _profiles(core: BatchCore) -> dict[str, UserProfile]:
    return core.store.get(core.store.user_ids())


def test_shuffled_input_in_other_batches_gives_identical_profiles(tmp_path: Path):
    events = generate(users=12, events_per_user=40, seed=3, duplicates=0.05).events
    shuffled = list(events)
    random.Random(1).shuffle(shuffled)
    a, b = _core(tmp_path / "a.db"), _core(tmp_path / "b.db")
    _run(a, _records(events, "file:a"), batch=64)
    _run(b, _records(shuffled, "file:b"), batch=17)
    pa, pb = _profiles(a), _profiles(b)
    assert pa.keys() == pb.keys() and len(pa) == 12
    for user_id in pa:
        x, y = pa[user_id], pb[user_id]
        assert x.event_count == y.event_count == 40
        np.testing.assert_allclose(x.state.long.decayed_sum, y.state.long.decayed_sum, atol=1e-6)
        np.testing.assert_allclose(x.state.short.decayed_sum, y.state.short.decayed_sum, atol=1e-6)
        assert [c.label for c in x.clusters] == [c.label for c in y.clusters]


def test_replaying_the_same_records_changes_nothing(tmp_path: Path):
    core = _core(tmp_path / "p.db")
    records = _records(generate(users=5, events_per_user=20, seed=4).events)
    _run(core, records)
    before = {u: p.version for u, p in _profiles(core).items()}
    outcome = core.process(records)
    assert outcome.applied == 0 and outcome.duplicates == len(records)
    assert outcome.texts_encoded == 0 and outcome.updates == [] and outcome.writes == 0
    assert {u: p.version for u, p in _profiles(core).items()} == before
    assert outcome.reannounced == []  # the embedded mode announces nothing


def test_a_worker_reannounces_what_comes_again_through_a_write(tmp_path: Path):
    core = _core(tmp_path / "p.db")
    core.reannounce = True  # as a worker's core is built
    records = _records(generate(users=5, events_per_user=20, seed=4).events)
    _run(core, records)
    before = {u: p.version for u, p in _profiles(core).items()}
    outcome = core.process(records)
    assert outcome.applied == 0 and outcome.updates == []
    assert {u: p.version for u, p in _profiles(core).items()} == before
    # A redelivery may follow a crash between the write and the publish: the stored
    # profiles are announced again, at the versions they have, each through a write of
    # that version under the fence (so a `forget` or a new owner in between stops it).
    assert outcome.writes == len(before)
    assert {(u.user_id, u.version) for u in outcome.reannounced} == set(before.items())


def test_duplicate_ids_from_new_offsets_are_not_reannounced(tmp_path: Path):
    core = _core(tmp_path / "p.db")
    events = generate(users=2, events_per_user=5, seed=6).events
    core.process(_records(events, "topic:0"))
    # The same events published again: new offsets, known ids. Not a redelivery.
    again = [RawRecord.at(json.dumps(e).encode(), "topic:0", 100 + i) for i, e in enumerate(events)]
    outcome = core.process(again)
    assert outcome.duplicates == len(events) and outcome.reannounced == []


def test_bad_records_are_rejected_and_good_ones_applied(tmp_path: Path):
    core = _core(tmp_path / "p.db")
    good = {
        "event_id": "e1",
        "user_id": "u",
        "ts": 1_799_000_000_000,
        "type": "click",
        "text": "A starship crew racing through a wormhole",
    }
    records = [
        RawRecord.at(b"{oops", "s", 1),
        RawRecord.at(json.dumps(good).encode(), "s", 2),
        RawRecord.at(b"\xff", "s", 3),
    ]
    outcome = core.process(records)
    assert outcome.applied == 1 and [r.origin.offset for r in outcome.rejects] == [1, 3]
    assert outcome.rejects[0].raw == b"{oops"
    [update] = outcome.updates
    assert update.user_id == "u" and update.version == 1 and update.event_count == 1
    assert update.clusters[0].label == good["text"]


def test_a_lost_version_fence_is_reread_and_reapplied(tmp_path: Path):
    path = tmp_path / "p.db"
    core = _core(path)
    events = generate(users=1, events_per_user=10, seed=5).events
    _run(core, _records(events[:5], "file:x"))

    class RacingStore(SqliteStore):
        """Another worker writes the same user right before our first write."""

        raced = False

        def apply(self, writes):
            if not self.raced:
                self.raced = True
                other = _core(path)
                other.process(_records(events, "file:x")[5:8])
            return super().apply(writes)

    racing = BatchCore(encoder=HashingEncoder(), store=RacingStore(path), clock=lambda: NOW)
    outcome = racing.process(_records(events, "file:x")[5:])
    assert outcome.lost_fences == 1
    profile = _profiles(racing)["user-00000"]
    assert profile.event_count == 10  # the other worker's 3 events are not applied twice


def test_a_profile_from_another_model_is_refused(tmp_path: Path):
    core = _core(tmp_path / "p.db")
    foreign = UserProfile.new("u", "other-model", 384)
    core.store.claim({EMBEDDED})
    core.store.apply([ProfileWrite(foreign, 0)])
    good = {
        "event_id": "e1",
        "user_id": "u",
        "ts": 1_799_000_000_000,
        "type": "query",
        "text": "jazz",
    }
    with pytest.raises(Exception, match="built with other-model"):
        core.process([RawRecord.at(json.dumps(good).encode(), "s", 1)])


def test_unrated_reviews_get_a_signed_weight_from_their_text(tmp_path: Path):
    core = _core(tmp_path / "p.db")
    review = {
        "event_id": "r1",
        "user_id": "u",
        "ts": 1_799_000_000_000,
        "type": "review",
        "text": "I hated it, absolutely terrible.",
    }
    core.process([RawRecord.at(json.dumps(review).encode(), "s", 1)])
    [entry] = _profiles(core)["u"].summary
    assert entry.weight < 0


def test_clicks_may_name_a_catalogued_item_instead_of_its_text(tmp_path: Path):
    from interest_stream.streams.core.items import apply_items

    store = open_store(f"sqlite:///{tmp_path}/p.db")
    encoder = HashingEncoder()
    items = [
        RawRecord.at(
            json.dumps(
                {"item_id": "i1", "text": "Jazz piano trio record", "domain": "music"}
            ).encode(),
            "items:0",
            1,
            key=b"i1",
        ),
        RawRecord.at(b"{broken", "items:0", 2, key=b"i2"),
    ]
    outcome = apply_items(items, encoder, store)
    assert outcome.stored == 1 and len(outcome.rejects) == 1
    core = BatchCore(encoder=encoder, store=store, items=store, clock=lambda: NOW)
    click = {
        "event_id": "c1",
        "user_id": "u",
        "ts": 1_799_000_000_000,
        "type": "click",
        "item_id": "i1",
    }
    unknown = {**click, "event_id": "c2", "item_id": "nope"}
    no_text = {**click, "event_id": "c3", "type": "query"}
    result = core.process(_records([click, unknown, no_text]))
    assert result.applied == 1 and result.texts_encoded == 0  # the stored vector was reused
    reasons = sorted(r.reason for r in result.rejects)
    assert "unknown item 'nope'" in reasons[0] and "field 'text': required" in reasons[1]
    profile = store.get(["u"])["u"]
    assert profile.clusters[0].label == "Jazz piano trio record"
    assert list(profile.domains) == ["music"]
    np.testing.assert_allclose(
        profile.state.long.profile(), encoder.encode(["Jazz piano trio record"])[0], atol=1e-6
    )
    # Erasing the item: later item-only clicks are rejected.
    erased = apply_items([(RawRecord.at(b"", "items:0", 3, key=b"i1"), True)], encoder, store)
    assert erased.erased == 1
    assert core.process(_records([{**click, "event_id": "c4"}])).rejects
