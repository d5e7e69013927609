"""`interest-stream bench pipeline` end to end on a tiny workload: every measurement runs
against the real servers and its figures hang together (not a timing test)."""

from __future__ import annotations

import pytest

from interest_stream.encoders.base import Encoder
from interest_stream.streams.lab.bench_pipeline import bench_pipeline
from interest_stream.streams.settings import load_settings

pytestmark = [pytest.mark.kafka, pytest.mark.cassandra, pytest.mark.slow]


def test_bench_pipeline_measures_every_stage(
    kafka_bootstrap: str, cassandra_contact: tuple[str, int], onnx_encoder: Encoder
) -> None:
    host, port = cassandra_contact
    settings = load_settings(
        brokers=kafka_bootstrap,
        store_url=f"cassandra://{host}:{port}/unused",
        batch_size=32,
        precision="fp32",
    )
    results = bench_pipeline(
        settings, onnx_encoder, users=6, events_per_user=12, freshness_rate=20, freshness_seconds=2
    )
    assert results["events"] == 72
    for stage in ("pipeline_real_encoder", "pipeline_encoding_excluded"):
        figures = results[stage]
        assert figures["events"] == 72 and figures["events_per_s"] > 0
        assert figures["writes"] == figures["touched_user_batches"] > 0
        assert figures["lost_fences"] == 0
    assert results["raw_ceiling"]["events_per_s"] > 0
    freshness = results["freshness"]
    assert freshness["events"] == 40  # 20/s for 2 s, each matched to its update
    assert 0 < freshness["p50_ms"] <= freshness["p99_ms"] <= freshness["max_ms"]
    ratios = results["ratios"]
    assert ratios["writes_per_touched_user_per_batch"] <= 1.0
    assert 0 < ratios["cassandra_writes_per_event"] <= 1.0
