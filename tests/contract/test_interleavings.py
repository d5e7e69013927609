"""The dangerous interleavings of the write path, driven on purpose with pause points, on
every store: a writer held between its read and its write while `forget` or another writer
acts. Each test is one interleaving; the assertion is the guarantee it threatens."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

import pytest

from interest_stream.encoders.hashing import HashingEncoder
from interest_stream.schemas.records import RawRecord
from interest_stream.store import ProfileStore
from interest_stream.store.base import partition_fence
from interest_stream.streams.core import pauses
from interest_stream.streams.core.batch import BatchCore
from interest_stream.streams.errors import StoreError
from tests.contract.conftest import Opener

NOW = 1_800_000_000.0
PARTITION = 3
FENCE = partition_fence(PARTITION)


def _core(store: ProfileStore) -> BatchCore:
    return BatchCore(encoder=HashingEncoder(), store=store, clock=lambda: NOW)


def _click(n: int, user: str = "u", ts: float = NOW - 3600) -> RawRecord:
    """Click n of `user` on input partition 3 at offset n."""
    event = {
        "event_id": f"{user}-{n}",
        "user_id": user,
        "ts": int((ts + n) * 1000),
        "type": "click",
        "text": f"{user} liked thing number {n}",
    }
    return RawRecord.at(
        json.dumps(event).encode(),
        f"clicks:{PARTITION}",
        n,
        topic="clicks",
        partition=PARTITION,
        key=user.encode(),
    )


def _held(core: BatchCore, point: str, records: list[RawRecord], act: Callable[[], None]) -> None:
    """Run `core.process(records)` on a thread, hold it at `point`, `act`, then let it go."""
    errors: list[BaseException] = []

    def work() -> None:
        try:
            core.process(records)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    with core.pauses.holding(point) as hold:
        thread = threading.Thread(target=work)
        thread.start()
        hold.wait_reached()
        act()
    thread.join(60)
    assert not thread.is_alive(), "the held writer did not finish"
    assert not errors, errors


def _event_ids(store: ProfileStore, user: str) -> set[str]:
    """The ids of the events the stored profile of `user` remembers (recent ids by key)."""
    from interest_stream.streams.interest.summary import event_key

    profile = store.get([user]).get(user)
    if profile is None:
        return set()
    keys = set(profile.recent_ids)
    return {f"{user}-{n}" for n in range(100) if event_key(f"{user}-{n}") in keys}


def test_a_forget_between_a_writers_read_and_its_write_is_not_undone(opener: Opener):
    first = _core(opener())
    first.process([_click(1), _click(2)])
    # A writer that does not hold the partition yet (a worker after a rebalance) reads the
    # user; `forget` erases the user before that writer writes.
    late = _core(opener())
    eraser = opener()
    _held(
        late,
        pauses.AFTER_READ,
        [_click(3)],
        lambda: eraser.erase("u", fence=FENCE, at=NOW, reason="test"),
    )
    # Events from before the erasure never come back: not 1 and 2 (erased), and not 3
    # either (stamped before the erasure too).
    assert _event_ids(eraser, "u") == set()
    assert "u" not in eraser.get(["u"])


def test_a_new_owner_writing_between_a_writers_read_and_its_write_is_not_overwritten(
    opener: Opener,
):
    first = _core(opener())
    first.process([_click(1)])
    # The partition's previous owner (paused, then thawed) reads the user; the new owner
    # stores and acknowledges click 2 in the meantime.
    old = _core(opener())
    new = _core(opener())
    _held(old, pauses.AFTER_READ, [_click(3)], lambda: new.process([_click(2)]))
    # Click 2 was acknowledged by the new owner: it must still be in the profile.
    assert _event_ids(new.store, "u") == {"u-1", "u-2", "u-3"}


def test_a_read_that_fails_after_a_new_claim_is_retried_before_anything_is_written(
    opener: Opener,
):
    """The writer's pending user was folded under a hold that `forget` took away; the
    flush claims again, and the read after that claim fails once (a store timeout). The
    retried flush must still fold onto a fresh read, not write what it had."""
    store = opener()
    core = _core(store)
    core.fold([_click(1), _click(2)])  # pending, not written
    opener().erase("u", fence=FENCE, at=NOW, reason="test")
    real_get = store.get
    failures = [StoreError("read timed out")]

    def get_failing_once(user_ids):  # type: ignore[no-untyped-def]
        if failures:
            raise failures.pop()
        return real_get(user_ids)

    store.get = get_failing_once  # type: ignore[method-assign]
    with pytest.raises(StoreError):
        core.flush()  # loses the fence, claims it again, then the read fails
    core.flush()
    assert _event_ids(store, "u") == set()
    assert "u" not in store.get(["u"])


def test_the_settings_take_exactly_the_pause_points_there_are() -> None:
    from typing import get_args

    assert get_args(pauses.PausePoint) == pauses.POINTS
