"""Named pause points: places in the batch core, the worker and `forget` where a test can
hold a thread and release it, to drive a dangerous interleaving on purpose instead of
sleeping and hoping.

The product calls `pauses.reach(name)` at each point; with no hold installed that is one
dictionary lookup. A test installs a hold (`with pauses.holding(name) as hold:`), waits
until the other thread has reached the point (`hold.wait_reached()`), acts (a `forget`, a
second writer, a rebalance) and releases it (`hold.release()`). The points are named by
what has happened just before them, so a test reads like the interleaving it drives.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

AFTER_CLAIM = "after-claim"
"""The fences of a batch's users are held; their profiles are not read yet."""
AFTER_READ = "after-read"
"""A batch's profiles were read (store or cache); nothing of it is folded or written."""
BEFORE_WRITE = "before-write"
"""A flush is about to write its pending profiles."""
AFTER_WRITE = "after-write"
"""A flush's winning profiles are stored; nothing of them is published."""
BEFORE_PUBLISH = "before-publish"
"""The worker is about to publish a flush's updates and DLQ records."""
BEFORE_ACK = "before-ack"
"""A flush's updates are confirmed by the broker; its offsets are not acknowledged."""
BEFORE_ERASE = "before-erase"
"""`forget` is about to erase a user in the store."""
BEFORE_TOMBSTONE = "before-tombstone"
"""`forget` erased a user in the store and is about to publish its tombstone."""

POINTS = (
    AFTER_CLAIM,
    AFTER_READ,
    BEFORE_WRITE,
    AFTER_WRITE,
    BEFORE_PUBLISH,
    BEFORE_ACK,
    BEFORE_ERASE,
    BEFORE_TOMBSTONE,
)
PausePoint = Literal[
    "after-claim",
    "after-read",
    "before-write",
    "after-write",
    "before-publish",
    "before-ack",
    "before-erase",
    "before-tombstone",
]
"""A point's name, as settings take it (the same names as POINTS, in the same order)."""

log = logging.getLogger(__name__)

HOLD_TIMEOUT_S = 60.0
"""A held thread goes on by itself after this long, so a failing test cannot hang CI."""


@dataclass
class Hold:
    """One installed hold: the thread that reaches the point waits until it is released."""

    name: str
    times: int = 1  # how many arrivals wait; later ones pass
    reached_event: threading.Event = field(default_factory=threading.Event)
    released_event: threading.Event = field(default_factory=threading.Event)
    arrivals: int = 0

    def wait_reached(self, timeout: float = HOLD_TIMEOUT_S) -> None:
        """Block until a thread is held at the point; AssertionError if none comes."""
        if not self.reached_event.wait(timeout):
            raise AssertionError(f"nothing reached pause point {self.name!r} in {timeout} s")

    def release(self) -> None:
        self.released_event.set()


class PausePoints:
    """The holds installed on one component (a batch core, a worker, a `forget` run)."""

    def __init__(self, *, crash_at: str | None = None, hold_dir: Path | None = None) -> None:
        """Fault injection for tests of other processes (settings FAULT_CRASH_AT and
        FAULT_HOLD_DIR): `crash_at`, the process kills itself with SIGKILL the first time
        it reaches that point, like `kill -9` there; `hold_dir`, a file named after a point
        in that folder holds every thread that reaches the point until the file is removed
        (the process writes `<point>.reached` there when one arrives)."""
        if crash_at is not None and crash_at not in POINTS:
            raise ValueError(f"unknown pause point {crash_at!r}; known: {', '.join(POINTS)}")
        self._crash_at = crash_at
        self._hold_dir = hold_dir
        self._holds: dict[str, Hold] = {}
        self._lock = threading.Lock()

    def reach(self, name: str) -> None:
        """Called by the product at point `name`: waits while a test holds it."""
        if name == self._crash_at:
            log.warning("fault injection: killing this process at %s", name)
            os.kill(os.getpid(), signal.SIGKILL)
        if self._hold_dir is not None:
            self._wait_for_file(self._hold_dir / name)
        if not self._holds:  # the production path: nothing installed
            return
        with self._lock:
            hold = self._holds.get(name)
            if hold is None or hold.arrivals >= hold.times:
                return
            hold.arrivals += 1
        hold.reached_event.set()
        hold.released_event.wait(HOLD_TIMEOUT_S)

    @staticmethod
    def _wait_for_file(hold: Path) -> None:
        if not hold.exists():
            return
        log.warning("fault injection: held at %s until %s is removed", hold.name, hold)
        hold.with_name(hold.name + ".reached").touch()
        deadline = time.monotonic() + HOLD_TIMEOUT_S
        while hold.exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    def hold(self, name: str, *, times: int = 1) -> Hold:
        """Install a hold on `name` (the next `times` arrivals wait for `release`)."""
        if name not in POINTS:
            raise ValueError(f"unknown pause point {name!r}; known: {', '.join(POINTS)}")
        hold = Hold(name, times)
        with self._lock:
            self._holds[name] = hold
        return hold

    def remove(self, name: str) -> None:
        with self._lock:
            hold = self._holds.pop(name, None)
        if hold is not None:
            hold.release()

    @contextmanager
    def holding(self, name: str, *, times: int = 1) -> Iterator[Hold]:
        """A hold for the length of a `with` block, released (and removed) at its end."""
        hold = self.hold(name, times=times)
        try:
            yield hold
        finally:
            self.remove(name)
