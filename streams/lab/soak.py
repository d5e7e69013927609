"""`interest-stream bench soak`: a steady load through the real servers for N minutes, to see
what only time shows: memory growth, lag creeping up, errors. Every minute it prints the
worker's resident memory, the freshness p99 of that minute, the consumer lag and the
errors so far; at the end, the slope of the worker's memory after the warm-up."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from interest_stream.schemas.events import TOPIC_OF_TYPE
from interest_stream.streams.demo import generate
from interest_stream.streams.errors import InterestStreamError
from interest_stream.streams.lab.pipeline.freshness import UpdateWatcher, latencies, wait_for
from interest_stream.streams.lab.pipeline.scratch import Scratch
from interest_stream.streams.lab.worker_process import WorkerProcess
from interest_stream.streams.settings import Settings

SAMPLE_S = 5.0
ERROR_METRICS = ("store_errors_total", "publish_errors_total")


def rss_bytes(pid: int | None) -> int | None:
    """Resident memory of a process (Linux /proc), None if unknown."""
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


@dataclass
class Minute:
    minute: int
    offered: int
    rss_mib: float | None
    freshness_p99_ms: float | None
    lag: int
    errors: int


class Offer:
    """Sends events at a steady rate from a thread: new ids, event time = send time."""

    def __init__(self, scratch: Scratch, rate: float, users: int) -> None:
        from interest_stream.streams.kafka.clients import make_producer

        self._producer = make_producer(scratch.settings, linger_ms=5)
        self._prefix = scratch.prefix
        self._rate = rate
        self._templates = generate(users=users, events_per_user=20, seed=31).events
        self.sent: dict[str, list[float]] = {}
        self.count = 0
        self.warm_user = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-offer", daemon=True)

    def warm_up(self) -> None:
        """One event before the clock starts, so that the worker's start-up is not timed."""
        event = {**self._templates[0], "event_id": "soak-warm-up"}
        self.warm_user = event["user_id"]
        self._send(event, time.time())
        self._producer.flush()

    def _send(self, event: dict[str, Any], now: float) -> None:
        event["ts"] = int(now * 1000)
        self._producer.send(
            self._prefix + TOPIC_OF_TYPE[event["type"]],
            key=event["user_id"].encode(),
            value=json.dumps(event).encode(),
        )

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        started = time.time()
        while not self._stop.is_set():
            due = started + self.count / self._rate
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)
            template = self._templates[self.count % len(self._templates)]
            now = time.time()
            event = {**template, "event_id": f"soak-{self.count}"}
            self.sent.setdefault(event["user_id"], []).append(now)
            self._send(event, now)
            self.count += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._producer.flush()
        self._producer.close()


def _p99(offer: Offer, watcher: UpdateWatcher, since: float) -> float | None:
    found = latencies(
        list(watcher.updates), dict(offer.sent), already={offer.warm_user: 1}, since=since
    )
    return round(float(np.percentile(found, 99)) * 1000, 1) if found else None


def soak(
    settings: Settings,
    *,
    minutes: float,
    rate: float = 200.0,
    users: int = 2000,
    warmup_minutes: float = 3.0,
    encoder: str = "onnx",
    workdir: Path,
    env: Mapping[str, str] | None = None,
    on_minute: Callable[[Minute], None] = lambda _: None,
) -> dict[str, Any]:
    """Run the load, report every minute, and return the figures."""
    scratch = Scratch(settings, "soak")
    try:
        watcher = UpdateWatcher(scratch.settings, scratch.prefix + settings.updates_topic)
        worker = scratch.worker(workdir / "worker-soak.log", encoder, env).start()
        offer = Offer(scratch, rate, users)
        samples: list[tuple[float, int]] = []
        reports: list[Minute] = []
        try:
            offer.warm_up()
            wait_for(lambda: watcher.total() >= 1, worker, "the worker's first update")
            started = time.time()
            offer.start()
            minute_start = started
            while True:
                time.sleep(SAMPLE_S)
                now = time.time()
                rss = rss_bytes(worker.pid)
                if rss is not None:
                    samples.append((now - started, rss))
                if not worker.alive():
                    raise InterestStreamError(
                        f"the worker died during the soak\n{worker.log_tail()}"
                    )
                done = now >= started + minutes * 60
                if now >= minute_start + 60 or done:
                    reports.append(_minute(len(reports) + 1, offer, watcher, worker, minute_start))
                    on_minute(reports[-1])
                    minute_start = now
                if done:
                    break
        finally:
            offer.stop()
            final_metrics = worker.metrics()
            worker.stop()
            watcher.close()
    finally:
        scratch.drop()
    return {
        "minutes": minutes,
        "rate": rate,
        "encoder": encoder,
        "offered": offer.count,
        "per_minute": [asdict(m) for m in reports],
        "memory": _growth(samples, warmup_minutes * 60),
        "errors": int(sum(final_metrics.get(name, 0.0) for name in ERROR_METRICS)),
        "rejected": int(final_metrics.get("events_rejected_total", 0.0)),
        "max_lag": max((m.lag for m in reports), default=0),
    }


def _minute(
    number: int, offer: Offer, watcher: UpdateWatcher, worker: WorkerProcess, since: float
) -> Minute:
    metrics = worker.metrics()
    rss = rss_bytes(worker.pid)
    return Minute(
        minute=number,
        offered=offer.count,
        rss_mib=None if rss is None else round(rss / 2**20, 1),
        freshness_p99_ms=_p99(offer, watcher, since),
        lag=int(metrics.get("consumer_lag_records", 0.0)),
        errors=int(sum(metrics.get(name, 0.0) for name in ERROR_METRICS)),
    )


def _growth(samples: list[tuple[float, int]], warmup_s: float) -> dict[str, Any]:
    """Least-squares slope of RSS after the warm-up, and the growth it implies over that
    span relative to the RSS at its start."""
    after = [(t, rss) for t, rss in samples if t >= warmup_s]
    if len(after) < 3:
        return {"samples": len(after), "slope_mib_per_min": None, "growth": None}
    times = np.array([t for t, _ in after]) / 60
    values = np.array([rss for _, rss in after]) / 2**20
    slope = float(np.polyfit(times, values, 1)[0])
    span = float(times[-1] - times[0])
    return {
        "samples": len(after),
        "start_mib": round(float(values[0]), 1),
        "end_mib": round(float(values[-1]), 1),
        "slope_mib_per_min": round(slope, 3),
        "growth": round(slope * span / float(values[0]), 4),
    }


def verdicts(figures: Mapping[str, Any]) -> dict[str, str]:
    """met / not met / too short to judge, per target."""
    per_minute = figures["per_minute"]
    final_lag = per_minute[-1]["lag"] if per_minute else 0
    memory = figures["memory"]
    judged = memory["growth"] is not None and memory["samples"] * SAMPLE_S >= 5 * 60
    return {
        "no errors": "met" if figures["errors"] == 0 else "not met",
        "lag bounded": "met" if final_lag <= 5 * figures["rate"] else "not met",
        "memory growth < 5%": (
            ("met" if memory["growth"] < 0.05 else "not met") if judged else "too short to judge"
        ),
    }
