"""`bench core`: the batch core alone over the pipeline shapes, as a worker feeds it."""

from __future__ import annotations

import json

from click.testing import CliRunner

from interest_stream.streams.cli import main
from interest_stream.streams.core.routing import Routing
from interest_stream.streams.lab.bench_core import PARTITIONS, kafka_records
from interest_stream.streams.lab.pipeline.shapes import SHAPES


def test_records_sit_on_their_users_partition_with_offsets_per_partition() -> None:
    events = SHAPES["wide"].scaled(0.01).events()
    records = kafka_records(events)
    routing = Routing(PARTITIONS)
    offsets: dict[str, list[int]] = {}
    for event, record in zip(events, records, strict=True):
        assert record.origin.partition == routing.owner(event["user_id"])
        assert record.origin.key == event["user_id"].encode()
        offsets.setdefault(record.origin.source, []).append(record.origin.offset)
    assert all(found == list(range(len(found))) for found in offsets.values())


def test_bench_core_applies_every_event_once_and_reports_cpu_per_event() -> None:
    args = ["core", "--encoder", "hashing", "--scale", "0.02", "--rounds", "2", "--profile", "5"]
    result = CliRunner().invoke(main, ["bench", *args, "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    assert set(figures["shapes"]) == {"default", "wide"}
    for entry in figures["shapes"].values():
        assert len(entry["rounds"]) == 2
        for run in entry["rounds"]:
            assert run["applied"] == run["events"] == entry["events"] and run["rejects"] == 0
            assert run["cpu_ms_per_event"] > 0
        assert len(entry["profile"]) == 5
        assert sum(row["own_share"] for row in entry["profile"]) <= 1.0


def test_bench_core_names_an_unknown_shape() -> None:
    result = CliRunner().invoke(main, ["bench", "core", "--shapes", "narrow"])
    assert result.exit_code == 2
    assert "unknown shape 'narrow'" in result.output
