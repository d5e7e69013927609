"""Events on another partition than their user's are forwarded there, not folded; a Kafka
record without a key is rejected (streams/core/routing.py)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from interest_stream.encoders.hashing import HashingEncoder
from interest_stream.schemas.records import RawRecord
from interest_stream.store import open_store
from interest_stream.streams.core.batch import BatchCore
from interest_stream.streams.core.routing import Routing, partition_of

NOW = 1_800_000_000.0
PARTITIONS = 4


def _record(user: str, partition: int, offset: int, *, key: bytes | None = b"") -> RawRecord:
    event = {
        "event_id": f"{user}-{offset}",
        "user_id": user,
        "ts": int((NOW - 60) * 1000),
        "type": "click",
        "text": "a click",
    }
    return RawRecord.at(
        json.dumps(event).encode(),
        f"clicks:{partition}",
        offset,
        topic="clicks",
        partition=partition,
        key=user.encode() if key == b"" else key,
    )


def _core(tmp_path: Path) -> BatchCore:
    store = open_store(f"sqlite:///{tmp_path}/p.db")
    return BatchCore(
        encoder=HashingEncoder(), store=store, clock=lambda: NOW, routing=Routing(PARTITIONS)
    )


def test_an_event_on_another_partition_is_forwarded_to_its_users_partition(tmp_path: Path):
    owner = partition_of(b"ann", PARTITIONS)
    elsewhere = (owner + 1) % PARTITIONS
    core = _core(tmp_path)
    outcome = core.process([_record("ann", elsewhere, 7), _record("ann", owner, 8)])
    [forward] = outcome.forwards
    assert (forward.user_id, forward.partition, forward.origin.offset) == ("ann", owner, 7)
    assert forward.value == _record("ann", elsewhere, 7).value
    assert outcome.applied == 1  # only the event that was on the owner's partition
    # Arriving through the repartition topic, it is folded by the owner.
    routed = _record("ann", owner, 1)
    routed = replace(routed, origin=replace(routed.origin, source="events-by-user:1", routed=True))
    assert core.process([routed]).applied == 1
    assert core.store.get(["ann"])["ann"].event_count == 2


def test_a_kafka_record_without_a_key_is_rejected_with_the_reason(tmp_path: Path):
    owner = partition_of(b"bob", PARTITIONS)
    outcome = _core(tmp_path).process([_record("bob", owner, 1, key=None)])
    [rejection] = outcome.rejects
    assert rejection.reason.startswith("message key: missing")
    assert outcome.applied == 0 and outcome.forwards == []


def test_a_worker_refuses_another_partition_count_than_the_store_was_written_for(
    tmp_path: Path,
):
    import pytest

    from interest_stream.streams.errors import ConfigurationError
    from interest_stream.streams.settings import load_settings
    from interest_stream.streams.worker import check_partition_count

    store = open_store(f"sqlite:///{tmp_path}/p.db")
    settings = load_settings(store_url=f"sqlite:///{tmp_path}/p.db")
    check_partition_count(store, settings, 4)
    check_partition_count(store, settings, 4)  # the same count: fine, again and again
    with pytest.raises(ConfigurationError, match="have 6 partitions, but the profiles in"):
        check_partition_count(store, settings, 6)


def test_an_event_forwarded_twice_is_applied_once_however_much_came_between(tmp_path: Path):
    owner = partition_of(b"ann", PARTITIONS)
    core = _core(tmp_path)

    def forwarded(offset_here: int) -> RawRecord:
        record = _record("ann", owner, 7)  # first arrived at clicks:(elsewhere), offset 7
        origin = replace(
            record.origin,
            source=f"events-by-user:{owner}",
            offset=offset_here,
            routed=True,
            first_source=f"clicks:{(owner + 1) % PARTITIONS}",
            first_offset=7,
        )
        return replace(record, origin=origin)

    assert core.process([forwarded(1)]).applied == 1
    # More than the 64 ids dedup by id remembers, from the owner's own partition.
    many = [
        replace(_record("ann", owner, n), value=_record("ann", owner, n).value)
        for n in range(100, 170)
    ]
    assert core.process(many).applied == 70
    # The same forward again (a retried publish): another offset here, the same first one.
    outcome = core.process([forwarded(2)])
    assert outcome.applied == 0 and outcome.duplicates == 1
    assert core.store.get(["ann"])["ann"].event_count == 71
