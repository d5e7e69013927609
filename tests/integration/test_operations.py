"""What an operator sees: the worker's /metrics while it runs (names, labels, no user ids),
the Grafana dashboard and alert rules querying only metrics a live worker serves, and a
one-minute soak through the real servers."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from interest_stream.streams.demo import generate
from tests.integration.harness import (
    ROOT,
    WorkerProcess,
    event_messages,
    oracle,
    publish,
    total_events,
    wait_until,
)

pytestmark = [pytest.mark.kafka, pytest.mark.cassandra, pytest.mark.slow]

DASHBOARD = ROOT / "deploy" / "grafana" / "interest-stream.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
METRIC = re.compile(r"\binterest_stream_[a-z_]+\b")
SAMPLE = re.compile(r"^(interest_stream_[a-z_]+)(?:\{([^}]*)\})? (\S+)$")

# What the issue asks the worker to expose, with the labels each must carry.
EXPECTED = {
    "interest_stream_events_consumed_total": {"topic"},
    "interest_stream_events_applied_total": set(),
    "interest_stream_events_duplicate_total": set(),
    "interest_stream_events_rejected_total": {"topic", "reason"},
    "interest_stream_dlq_records_total": set(),
    "interest_stream_batch_duration_seconds_bucket": {"le"},
    "interest_stream_flush_duration_seconds_bucket": {"le"},
    "interest_stream_freshness_seconds_bucket": {"le"},
    "interest_stream_consumer_lag_records": {"topic", "partition"},
    "interest_stream_encoder_texts_total": set(),
    "interest_stream_encoder_seconds_total": set(),
    "interest_stream_encoder_cache_hit_ratio": set(),
    "interest_stream_fence_conflicts_total": set(),
    "interest_stream_store_written_bytes_total": set(),
    "interest_stream_publish_errors_total": set(),
    "interest_stream_store_errors_total": {"operation"},
    "interest_stream_profile_cache_profiles": set(),
}


def _samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    found = []
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match:
            name, labels, value = match.groups()
            pairs = dict(re.findall(r'([a-z_]+)="([^"]*)"', labels or ""))
            found.append((name, pairs, float(value)))
    return found


def _dashboard_metrics() -> set[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert len(exprs) >= 10
    return {m for expr in exprs for m in METRIC.findall(expr)}


def test_metrics_of_a_running_worker_cover_the_dashboard_and_alerts(
    cluster: dict[str, str], tmp_path: Path
) -> None:
    events = generate(users=20, events_per_user=10, seed=5, duplicates=0.1).events
    expected = oracle(events, tmp_path, time.time())
    bad = [("clicks", b"k1", b"not json"), ("queries", b"k2", b'{"event_id": "x"}')]
    publish(cluster["bootstrap"], cluster["prefix"], [*event_messages(events), *bad])
    worker = WorkerProcess(
        bootstrap=cluster["bootstrap"],
        prefix=cluster["prefix"],
        store_url=cluster["store"],
        log_path=tmp_path / "worker.log",
    ).start()
    want = sum(p.event_count for p in expected.values())
    try:
        wait_until(
            lambda: (
                total_events(cluster["store"]) >= want
                and worker.totals().dlq == len(bad)
                and worker.metrics().get("consumer_lag_records", 1.0) == 0.0
            ),
            180,
            "every event applied, the bad records on the DLQ and no lag",
            worker.log_tail,
        )
        text = worker.metrics_text()
    finally:
        worker.stop()

    samples = _samples(text)
    names = {name for name, _, _ in samples}
    for name, labels in EXPECTED.items():
        assert name in names, f"{name} missing from /metrics"
        for _, pairs, _ in (s for s in samples if s[0] == name):
            assert labels <= set(pairs), (name, pairs)
    by_name = {}
    for name, _pairs, value in samples:
        by_name[name] = by_name.get(name, 0.0) + value
    assert by_name["interest_stream_events_applied_total"] == want
    assert by_name["interest_stream_events_duplicate_total"] > 0
    assert by_name["interest_stream_dlq_records_total"] == len(bad)
    assert by_name["interest_stream_freshness_seconds_count"] >= want
    assert by_name["interest_stream_encoder_texts_total"] > 0
    consumed = {p["topic"] for n, p, _ in samples if n == "interest_stream_events_consumed_total"}
    assert {t.removeprefix(cluster["prefix"]) for t in consumed} == {"clicks", "reviews", "queries"}
    # Bounded labels: no user id or event id ever becomes a label value.
    users = {e["user_id"] for e in events}
    label_values = {v for _, pairs, _ in samples for v in pairs.values()}
    assert not label_values & users
    assert all(len(v) <= 64 for v in label_values)

    queried = _dashboard_metrics() | set(METRIC.findall(ALERTS.read_text()))
    missing = sorted(queried - names)
    assert not missing, (
        f"the dashboard or alerts query metrics the worker does not serve: {missing}"
    )


def test_one_minute_soak_runs_clean(cluster: dict[str, str], tmp_path: Path) -> None:
    host_port = cluster["store"].split("//", 1)[1].split("/", 1)[0]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "interest_stream.streams.cli",
            "bench",
            "soak",
            "--brokers",
            cluster["bootstrap"],
            "--cassandra",
            host_port,
            "--minutes",
            "1",
            "--warmup-minutes",
            "0.25",
            # A rate this 2-core machine sustains with the real encoder next to both
            # servers; the 15-minute soak at 200/s is in docs/benchmarks.md.
            "--rate",
            "100",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    # Exit 1 means a verdict was not met; which ones may be is asserted below.
    assert result.returncode in (0, 1), result.stdout[-3000:] + result.stderr[-3000:]
    figures = json.loads(result.stdout)
    assert figures["errors"] == 0 and figures["rejected"] == 0
    # Rates and lag are the benchmark's to report (they move with the machine's load); the
    # test asserts what must hold whatever the load.
    assert figures["offered"] > 0
    minute = figures["per_minute"][0]
    assert minute["rss_mib"] > 50 and minute["freshness_p99_ms"] > 0
    assert figures["memory"]["samples"] >= 3
    verdicts = figures["verdicts"]
    assert set(verdicts) == {"no errors", "lag bounded", "memory growth < 5%"}
    assert verdicts["no errors"] == "met"
    assert verdicts["memory growth < 5%"] == "too short to judge"
    # Lag is the only verdict the load may miss (two CI runs on 2 cores left 1,414 records
    # behind at 100 events/s), and the exit status says whether one was missed.
    assert result.returncode == (1 if verdicts["lag bounded"] == "not met" else 0)
