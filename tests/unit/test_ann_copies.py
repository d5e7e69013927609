"""The background writer of ANN copies: skip what did not move, coalesce, retry, flush."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from interest_stream.store.cassandra.ann import AnnCopy, AnnRefresher, moved
from interest_stream.streams.interest.horizons import InterestParams
from interest_stream.streams.interest.profile import UserProfile, WeightedEvent, fold_events

DIM = 8


def _unit(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).standard_normal(DIM)
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def _profile(user_id: str, directions: Sequence[int], base: UserProfile | None = None):
    start = base or UserProfile.new(user_id, "m", DIM)
    events = [
        WeightedEvent(f"{user_id}-{start.version}-{i}", 1.7e9 + i, 1.0, "t", _unit(d))
        for i, d in enumerate(directions)
    ]
    return fold_events(start, events, InterestParams(), updated_at=1.7e9).profile


class Recorder:
    """A writer that records copies, can be held at a gate, and can fail a number of times."""

    def __init__(self, failures: int = 0) -> None:
        self.rounds: list[list[AnnCopy]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.failures = failures

    def __call__(self, copies: Sequence[AnnCopy]) -> list[BaseException | None]:
        self.entered.set()
        self.gate.wait(10)
        self.rounds.append(list(copies))
        if self.failures:
            self.failures -= 1
            return [RuntimeError("node down")] * len(copies)
        return [None] * len(copies)

    def written(self) -> list[tuple[str, int]]:
        return [(c.user_id, c.version) for r in self.rounds for c in r]


def test_moved_compares_each_horizon_with_its_copy():
    a, b = _unit(1), _unit(2)
    assert moved((a, a), None, 0.99)
    assert not moved((a, a), (a, a), 0.99)
    assert moved((a, b), (a, a), 0.99)
    assert moved((None, a), (a, a), 0.99) and moved((a, a), (None, a), 0.99)
    assert not moved((None, a), (None, a), 0.99)
    assert moved((a, a), (a, a), 1.01)  # a threshold above 1 rewrites every time


def test_copies_are_written_once_and_skipped_until_the_profile_moves():
    writer = Recorder()
    refresher = AnnRefresher(writer, min_cosine=0.99)
    first = _profile("u", [1] * 20)
    refresher.offer([(first, 1)])
    assert refresher.flush(5)
    nudged = _profile("u", [1], base=first)  # same direction: the copy still fits
    refresher.offer([(nudged, 1)])
    assert refresher.flush(5)
    away = _profile("u", [7] * 40, base=nudged)
    refresher.offer([(away, 1)])
    assert refresher.flush(5)
    refresher.close()
    assert writer.written() == [("u", first.version), ("u", away.version)]
    assert refresher.skipped == 1 and refresher.written == 2


def test_offers_for_one_user_coalesce_while_a_round_is_in_flight():
    writer = Recorder()
    writer.gate.clear()
    refresher = AnnRefresher(writer, min_cosine=1.01)  # every change is written
    profile = _profile("u", [1])
    refresher.offer([(profile, 1), (_profile("v", [2]), 1)])
    versions = []
    for step in range(5):
        profile = _profile("u", [step + 3], base=profile)
        versions.append(profile.version)
        refresher.offer([(profile, 1)])
    writer.gate.set()
    assert refresher.flush(5)
    refresher.close()
    # The first round took what was pending when it started; the offers made while it was
    # held at the gate became one write of the latest profile.
    of_u = [version for user, version in writer.written() if user == "u"]
    assert of_u[-1] == versions[-1] and len(of_u) <= 2
    assert [user for user, _ in writer.written()].count("v") == 1


def test_failed_copies_are_retried_unless_a_newer_one_came():
    writer = Recorder(failures=2)
    refresher = AnnRefresher(writer, min_cosine=0.99)
    profile = _profile("u", [1])
    refresher.offer([(profile, 1)])
    assert refresher.flush(10)
    refresher.close()
    assert writer.written() == [("u", profile.version)] * 3
    assert refresher.failed == 2 and refresher.written == 1 and refresher.pending == 0


def test_forget_drops_a_pending_copy_so_an_erasure_is_final():
    writer = Recorder()
    writer.gate.clear()
    refresher = AnnRefresher(writer, min_cosine=0.99)
    refresher.offer([(_profile("a", [1]), 1)])
    assert writer.entered.wait(5)  # a is in flight, held at the gate
    refresher.offer([(_profile("b", [2]), 1)])  # pending behind it
    release = threading.Timer(0.2, writer.gate.set)
    release.start()
    refresher.forget("b")
    assert refresher.flush(5)
    refresher.close()
    assert [user for user, _ in writer.written()] == ["a"]


def test_close_stops_the_thread_and_flush_times_out_while_blocked():
    writer = Recorder()
    writer.gate.clear()
    refresher = AnnRefresher(writer, min_cosine=0.99)
    refresher.offer([(_profile("a", [1]), 1)])
    assert refresher.flush(0.2) is False
    writer.gate.set()
    refresher.close()
    assert refresher.pending == 0 and refresher.written == 1


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_users_copy_is_rewritten_at_most_once_per_interval_then_the_latest_wins():
    writer = Recorder()
    clock = FakeClock()
    refresher = AnnRefresher(writer, min_cosine=1.01, min_interval_s=30.0, clock=clock)
    profile = _profile("u", [1])
    refresher.offer([(profile, 1)])
    deadline = threading.Event()
    for _ in range(100):  # the first copy of a user is due at once
        if refresher.written == 1:
            break
        deadline.wait(0.05)
    assert writer.written() == [("u", profile.version)]
    versions = []
    for step in range(3):  # within the interval: held back, coalesced
        profile = _profile("u", [step + 3], base=profile)
        versions.append(profile.version)
        refresher.offer([(profile, 1)])
    deadline.wait(0.3)
    assert refresher.written == 1 and refresher.pending == 1
    clock.now += 30.0
    refresher.offer([(_profile("v", [2]), 1)])  # any wake-up finds u due now
    for _ in range(100):
        if refresher.written == 3:
            break
        deadline.wait(0.05)
    refresher.close()
    assert [v for user, v in writer.written() if user == "u"] == [1, versions[-1]]


def test_flush_writes_copies_held_back_by_the_interval():
    writer = Recorder()
    clock = FakeClock()
    refresher = AnnRefresher(writer, min_cosine=1.01, min_interval_s=3600.0, clock=clock)
    profile = _profile("u", [1])
    refresher.offer([(profile, 1)])
    assert refresher.flush(5)
    later = _profile("u", [5], base=profile)
    refresher.offer([(later, 1)])
    assert refresher.flush(5)  # due at once, an hour early
    refresher.close()
    assert writer.written() == [("u", profile.version), ("u", later.version)]


def test_only_the_indexed_horizons_decide_whether_a_copy_moved():
    a, b = _unit(1), _unit(2)
    assert not moved((b, a), (a, a), 0.99, horizons=("long",))
    assert moved((a, b), (a, a), 0.99, horizons=("long",))
    assert moved((b, a), (a, a), 0.99, horizons=("short",))
    assert not moved((None, a), (a, a), 0.99, horizons=("long",))
    assert moved((b, a), (a, a), 0.99)  # both, by default


def test_a_refresher_of_the_long_index_skips_a_profile_whose_long_horizon_stayed():
    recorder = Recorder()
    refresher = AnnRefresher(recorder, min_cosine=0.99, horizons=("long",))
    first = _profile("u", [1, 1, 1])
    refresher.offer([(first, 1)])
    assert refresher.flush(5)
    # Only the short horizon turns: the long one is what the index holds, and it stays.
    turned = replace(first.state, short=_profile("v", [2]).state.short)
    same_long = replace(first, interests=turned)
    refresher.offer([(replace(same_long, version=first.version + 1), 2)])
    assert refresher.flush(5)
    refresher.close()
    assert recorder.written() == [("u", first.version)]
    assert refresher.skipped == 1
