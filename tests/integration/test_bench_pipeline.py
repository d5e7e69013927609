"""`interest-stream bench pipeline` end to end on a tiny workload of each shape: every
measurement runs against the real servers and its figures hang together (not a timing
test)."""

from __future__ import annotations

import pytest

from interest_stream.encoders.base import Encoder
from interest_stream.streams.lab.pipeline import bench_pipeline
from interest_stream.streams.settings import Settings, load_settings

pytestmark = [pytest.mark.kafka, pytest.mark.cassandra, pytest.mark.slow]


def _settings(kafka_bootstrap: str, cassandra_contact: tuple[str, int]) -> Settings:
    """Small batches and the fp32 encoder (the test's `onnx_encoder`)."""
    host, port = cassandra_contact
    return load_settings(
        brokers=kafka_bootstrap,
        store_url=f"cassandra://{host}:{port}/unused",
        batch_size=32,
        precision="fp32",
    )


def test_bench_pipeline_measures_every_stage_of_both_shapes(
    kafka_bootstrap: str, cassandra_contact: tuple[str, int], onnx_encoder: Encoder
) -> None:
    settings = _settings(kafka_bootstrap, cassandra_contact)
    results = bench_pipeline(
        settings,
        onnx_encoder,
        scale=0.01,
        freshness_rate=20,
        freshness_seconds=2,
        env={"INTEREST_STREAM_PRECISION": "fp32"},
    )
    assert sorted(results["shapes"]) == ["default", "wide"]
    for name, shape in results["shapes"].items():
        events = shape["events"]
        assert events > 50 and shape["unique_texts"] <= events, name
        for stage in ("pipeline_real_encoder", "pipeline_encoding_excluded"):
            figures = shape[stage]
            assert "error" not in figures, (name, stage, figures)
            assert figures["events"] == events and figures["events_per_s"] > 0
            assert 0 < figures["writes"] <= events and figures["lost_fences"] == 0
            assert figures["bytes_per_event"] > 0 and figures["flushes"] >= 1
            assert figures["cpu_s_per_1000_events"]["worker"] > 0
        raw = shape["raw_vector_rows"]
        assert raw["events"] == events and raw["events_per_s"] > 0
        freshness = shape["freshness"]
        assert freshness["events"] == 40  # 20/s for 2 s, each matched to its update
        assert 0 < freshness["p50_ms"] <= freshness["p99_ms"] <= freshness["max_ms"]
        ratios = shape["ratios"]
        assert ratios["pipeline_vs_encoder_alone"] > 0 and ratios["encoding_excluded_vs_raw"] > 0
        assert set(ratios["targets_met"]) == {
            "pipeline_vs_encoder_alone",
            "encoding_excluded_vs_raw",
            "freshness_p99_ms",
            "bytes_per_event",
        }


def test_bench_ann_writes_copies_and_measures_recall_against_an_exact_scan(
    cassandra_contact: tuple[str, int],
) -> None:
    from interest_stream.streams.lab.bench_ann import bench_ann

    host, port = cassandra_contact
    settings = load_settings(store_url=f"cassandra://{host}:{port}/unused")
    figures = bench_ann(settings, users=80, queries=10, similarity="schema")
    assert figures["failed_writes"] == 0 and figures["users"] == 80
    # 80 vectors fit the index's graph whole: ANN finds (nearly) the exact top 10.
    assert figures["recall_at_10"] >= 0.8
    assert figures["cassandra_cpu_s_per_1000_copies"] is not None


def test_bench_workers_drains_the_same_workload_with_one_and_with_two_processes(
    kafka_bootstrap: str, cassandra_contact: tuple[str, int], onnx_encoder: Encoder
) -> None:
    """Two worker processes of one group share the partitions (each consumed some of the
    events) and together apply every event exactly once; the speed-up is measured, not
    asserted."""
    from interest_stream.streams.lab.bench_workers import bench_workers

    settings = _settings(kafka_bootstrap, cassandra_contact)
    results = bench_workers(
        settings,
        onnx_encoder,
        "default",
        [1, 2],
        rounds=1,
        scale=0.1,  # 20 users: each process's partitions hold some of them
        env={"INTEREST_STREAM_PRECISION": "fp32", "INTEREST_STREAM_ANN_COPIES": "false"},
    )
    events = results["events"]
    assert events > 50 and results["partitions"] >= 2
    for count in (1, 2):
        figures = results["runs"][str(count)]
        assert "error" not in figures, (count, figures)
        assert figures["workers"] == count and figures["events"] == events
        assert figures["applied"] == events and figures["duplicates"] == 0, figures
        assert 0 < figures["writes"] <= events and figures["lost_fences"] == 0
        assert figures["cpu_s_per_1000_events"]["worker"] > 0
        assert 0 <= figures["publish_seconds"] < settings.kafka_session_timeout_s
        consumed = figures["records_by_worker"]
        assert len(consumed) == count and all(records > 0 for records in consumed), consumed
        assert sum(consumed) >= events
    assert results["runs"]["1"]["speedup"] == 1.0
    assert results["runs"]["2"]["speedup"] > 0
