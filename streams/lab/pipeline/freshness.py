"""Freshness: events offered at a fixed rate to a running worker, and for each the time
from its send to the publication of the first profile update that contains it."""

from __future__ import annotations

import json
import re
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from interest_stream.schemas.events import TOPIC_OF_TYPE
from interest_stream.streams.errors import InterestStreamError
from interest_stream.streams.lab.pipeline.scratch import Scratch
from interest_stream.streams.lab.worker_process import WorkerGroup, WorkerProcess
from interest_stream.streams.settings import Settings

_EVENT_COUNT = re.compile(rb'"event_count":\s*(\d+)')
WAIT_S = 300.0


class UpdateWatcher:
    """Follows profile-updates in a thread; records per-user counts and publish times.

    It shares the machine with the pipeline it measures, so it does as little as it can:
    the user from the key, the event count by a regex instead of parsing the whole update
    (two 384-float vectors), no CRC checks.
    """

    def __init__(self, settings: Settings, topic: str) -> None:
        from interest_stream.streams.kafka.clients import make_consumer

        self._consumer = make_consumer(
            settings,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
            consumer_timeout_ms=200,
            check_crcs=False,
        )
        self._consumer.subscribe([topic])
        self.counts: dict[str, int] = {}
        self.updates: list[tuple[str, int, float]] = []  # user, event_count, publish time (s)
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="update-watcher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for message in self._consumer:
                if message.value is None or message.key is None:
                    continue
                found = _EVENT_COUNT.search(message.value)
                if found is None:
                    self.error = f"profile update without event_count: {message.value[:80]!r}"
                    return
                user_id, event_count = message.key.decode(), int(found.group(1))
                self.counts[user_id] = event_count
                self.updates.append((user_id, event_count, message.timestamp / 1000.0))
                if self._stop.is_set():
                    break

    def total(self) -> int:
        if self.error:
            raise InterestStreamError(self.error)
        return sum(self.counts.values())

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._consumer.close()


def wait_for(
    condition: Any,
    worker: WorkerProcess | WorkerGroup,
    what: str,
    timeout_s: float = WAIT_S,
    pause_s: Callable[[], float] = lambda: 0.05,
) -> None:
    """Poll `condition` until it holds, `pause_s()` apart; one-line error if the worker
    dies or time runs out."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if not worker.alive():
            raise InterestStreamError(f"the worker died waiting for {what}\n{worker.log_tail()}")
        if time.monotonic() > deadline:
            raise InterestStreamError(f"timed out waiting for {what}\n{worker.log_tail()}")
        time.sleep(pause_s())


def freshness(
    settings: Settings,
    events: Sequence[dict[str, Any]],
    rate: float,
    seconds: float,
    workdir: Path,
    tag: str,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Offer `rate` events/s for `seconds` (event times = send times); latency percentiles
    from each send to the first update of its user whose event count includes it."""
    from interest_stream.streams.kafka.clients import make_producer

    scratch = Scratch(settings, f"fresh{tag}")
    offered_events = list(events[: max(1, int(rate * seconds))])
    try:
        watcher = UpdateWatcher(scratch.settings, scratch.prefix + settings.updates_topic)
        worker = scratch.worker(workdir / f"worker-fresh-{tag}.log", "onnx", env).start()
        producer = make_producer(scratch.settings, linger_ms=0)
        try:
            warm = {**offered_events[0], "event_id": "warm-up", "ts": int(time.time() * 1000)}
            producer.send(
                scratch.prefix + TOPIC_OF_TYPE[warm["type"]],
                key=warm["user_id"].encode(),
                value=json.dumps(warm).encode(),
            )
            producer.flush()
            wait_for(lambda: watcher.total() >= 1, worker, "the warm-up update")
            sent: dict[str, list[float]] = defaultdict(list)
            started = time.time()
            for i, event in enumerate(offered_events):
                delay = started + i / rate - time.time()
                if delay > 0:
                    time.sleep(delay)
                now = time.time()
                event = {**event, "ts": int(now * 1000)}
                sent[event["user_id"]].append(now)
                producer.send(
                    scratch.prefix + TOPIC_OF_TYPE[event["type"]],
                    key=event["user_id"].encode(),
                    value=json.dumps(event).encode(),
                )
            producer.flush()
            offered = len(offered_events) / (time.time() - started)
            expected = len(offered_events) + 1
            wait_for(lambda: watcher.total() >= expected, worker, "all offered events")
        finally:
            producer.close()
            worker.stop()
            watcher.close()
        found = latencies(watcher.updates, sent, already={warm["user_id"]: 1})
        if len(found) != len(offered_events):
            raise InterestStreamError(
                f"{len(offered_events) - len(found)} offered events never showed in an update"
            )
        values = np.array(found)
        return {
            "offered_events_per_s": round(offered, 1),
            "events": len(found),
            "p50_ms": round(float(np.percentile(values, 50)) * 1000, 1),
            "p99_ms": round(float(np.percentile(values, 99)) * 1000, 1),
            "max_ms": round(float(values.max()) * 1000, 1),
        }
    finally:
        scratch.drop()


def latencies(
    updates: Sequence[tuple[str, int, float]],
    sent: Mapping[str, list[float]],
    *,
    already: Mapping[str, int] | None = None,
    since: float = 0.0,
) -> list[float]:
    """Per user, events are applied in offset order: the k-th is in the first update whose
    event count reaches k (plus the events `already` counted for that user before the
    measurement). Events sent before `since`, or not announced yet, are left out."""
    by_user: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for user, count, published in updates:
        by_user[user].append((count, published))
    found = []
    for user, times in sent.items():
        ordered = sorted(by_user[user])
        base = (already or {}).get(user, 0)
        for k, sent_at in enumerate(times, start=1 + base):
            if sent_at < since:
                continue
            shown = next((p for c, p in ordered if c >= k), None)
            if shown is not None:
                found.append(shown - sent_at)
    return found
