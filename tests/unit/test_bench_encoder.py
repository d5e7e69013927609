"""`bench encoder` end to end on a tiny corpus: every row carries the ratios it promises."""

from __future__ import annotations

import pytest

from interest_stream.streams.lab.bench_encoder import bench_encoder, summary


@pytest.mark.slow
def test_bench_encoder_rows_compare_like_with_like() -> None:
    rows = bench_encoder(texts=24, repeats=1, corpora=("short",), precisions=("fp32", "int8"))
    measured = [row for row in rows if not row.get("skipped")]
    assert [row["label"] for row in measured] == [
        "torch fp32 cpu",
        "onnx fp32 cpu",
        "onnx int8 cpu",
    ]
    for row in measured:
        assert row["baseline"] == "torch fp32 cpu" and row["ratio"] > 0
        assert row["parity_min"] > 0.97
    for row in measured[1:]:
        assert row["vs_raw"] > 0 and 0.0 <= row["host_share"] <= 1.0
        assert row["model_id"].startswith("all-MiniLM-L6-v2:")
    assert len(summary(rows)) == 2
