"""`bench workers`' parts that need no servers: the worker group's signals, stop and sums,
the process counts it accepts and the run it reports per count."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click
import pytest

from interest_stream.streams.lab.bench_workers import _counts, _median_run
from interest_stream.streams.lab.worker_process import WorkerGroup, WorkerProcess, WorkerTotals


def _sleeper(tmp_path: Path, name: str) -> WorkerProcess:
    """A WorkerProcess whose process is a plain sleeping Python, not a worker."""
    member = WorkerProcess(
        bootstrap="unused:9092", prefix="p-", store_url="sqlite:///unused", log_path=tmp_path / name
    )
    member.process = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True
    )
    return member


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def _until(condition: Any, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_pause_freezes_every_member_and_resume_and_stop_end_them(tmp_path: Path) -> None:
    group = WorkerGroup([_sleeper(tmp_path, "a.log"), _sleeper(tmp_path, "b.log")])
    try:
        group.pause()
        assert all(_until(lambda pid=pid: _state(pid) == "T") for pid in group.pids)
        group.resume()
        assert all(_until(lambda pid=pid: _state(pid) != "T") for pid in group.pids)
        group.pause()  # stop() must end paused members too
    finally:
        group.stop()
    assert not any(member.alive() for member in group.members)


class _Member:
    def __init__(self, totals: WorkerTotals, fails_to_stop: bool = False) -> None:
        self._totals, self.fails_to_stop, self.stopped = totals, fails_to_stop, False
        self.process = None

    def totals(self) -> WorkerTotals:
        return self._totals

    def alive(self) -> bool:
        return not self.stopped

    def stop(self) -> None:
        self.stopped = True
        if self.fails_to_stop:
            raise subprocess.TimeoutExpired("worker", 30)


def test_totals_are_summed_over_members_field_by_field() -> None:
    group = WorkerGroup(
        [
            _Member(WorkerTotals(records=3, applied=2, writes=1)),  # type: ignore[list-item]
            _Member(WorkerTotals(records=5, applied=4, lost_fences=1)),  # type: ignore[list-item]
        ]
    )
    assert group.totals() == WorkerTotals(records=8, applied=6, writes=1, lost_fences=1)


def test_a_member_that_fails_to_stop_does_not_keep_the_others_running() -> None:
    first = _Member(WorkerTotals(), fails_to_stop=True)
    second = _Member(WorkerTotals())
    group = WorkerGroup([first, second])  # type: ignore[list-item]
    with pytest.raises(subprocess.TimeoutExpired):
        group.stop()
    assert first.stopped and second.stopped


def test_an_empty_group_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        WorkerGroup([])


@pytest.mark.parametrize("value", ["", "0,1", "1,1", "one", "2,-1"])
def test_process_counts_must_be_distinct_positive_integers(value: str) -> None:
    with pytest.raises(click.BadParameter):
        _counts(value)


def test_process_counts_keep_their_order() -> None:
    assert _counts("2, 1,4") == [2, 1, 4]


def test_the_reported_run_is_the_median_one_and_a_failure_wins() -> None:
    runs = [{"events_per_s": 300.0}, {"events_per_s": 100.0}, {"events_per_s": 200.0}]
    assert _median_run(runs)["events_per_s"] == 200.0
    assert _median_run(runs)["events_per_s_each_round"] == [300.0, 100.0, 200.0]
    assert _median_run(runs[:2])["events_per_s"] == 100.0  # the lower of an even count
    assert _median_run([*runs, {"error": "timed out"}]) == {"error": "timed out"}
