"""The embedded CLI as a user runs it: replays, shuffles, rejects and clear errors."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from interest_stream.store import open_store
from interest_stream.streams.cli import main
from interest_stream.streams.demo import generate


def _write(path: Path, events: list[dict]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    return path


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def _state(url: str) -> dict[str, tuple[int, np.ndarray]]:
    store = open_store(url)
    try:
        profiles = store.get(store.user_ids())
    finally:
        store.close()
    return {u: (p.event_count, p.state.long.decayed_sum) for u, p in profiles.items()}


def test_run_twice_into_one_store_changes_nothing_and_a_shuffled_copy_matches(tmp_path: Path):
    events = generate(users=8, events_per_user=25, seed=9, duplicates=0.05).events
    original = _write(tmp_path / "events.jsonl", events)
    shuffled_events = list(events)
    random.Random(2).shuffle(shuffled_events)
    shuffled = _write(tmp_path / "shuffled.jsonl", shuffled_events)
    first, second = f"sqlite:///{tmp_path}/a.db", f"sqlite:///{tmp_path}/b.db"

    code, output = _run("run", str(original), "--store", first, "--encoder", "hashing", "--json")
    assert code == 0, output
    summary = json.loads(output)
    assert summary["applied"] == 200 and summary["rejected"] == 0
    state = _state(first)

    code, output = _run("run", str(original), "--store", first, "--encoder", "hashing", "--json")
    assert code == 0 and json.loads(output)["applied"] == 0
    again = _state(first)
    assert again.keys() == state.keys()
    assert all(np.array_equal(again[u][1], state[u][1]) for u in state)

    code, _ = _run(
        "run", str(shuffled), "--store", second, "--encoder", "hashing", "--batch-size", "33"
    )
    assert code == 0
    other = _state(second)
    assert other.keys() == state.keys()
    for user_id, (count, vector) in state.items():
        assert other[user_id][0] == count
        np.testing.assert_allclose(other[user_id][1], vector, atol=1e-6)


def test_bad_lines_are_rejected_with_file_line_and_field(tmp_path: Path):
    good = {
        "event_id": "e1",
        "user_id": "u",
        "ts": "2026-01-02T03:04:05Z",
        "type": "query",
        "text": "jazz piano",
    }
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(
        json.dumps(good).encode()
        + b"\n{oops\n\xff\xfe\n"
        + json.dumps({**good, "event_id": "e2", "text": ""}).encode()
        + b"\n"
    )
    rejects = tmp_path / "rejects.jsonl"
    code, output = _run(
        "run",
        str(path),
        "--store",
        f"sqlite:///{tmp_path}/p.db",
        "--encoder",
        "hashing",
        "--rejects",
        str(rejects),
    )
    assert code == 1
    assert f"{path}:2: not JSON" in output
    assert f"{path}:4: field 'text'" in output
    records = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [r["offset"] for r in records] == [2, 3, 4]
    assert records[1]["raw_base64"] == "//4="  # the original bytes, even when not UTF-8


def test_errors_are_one_clear_line(tmp_path: Path):
    code, output = _run("run", str(tmp_path / "missing.jsonl"), "--encoder", "hashing")
    assert code == 2 and "missing.jsonl: no such file" in output and "Traceback" not in output
    events = _write(tmp_path / "e.jsonl", generate(users=1, events_per_user=1).events)
    code, output = _run("run", str(events), "--store", "postgres://x", "--encoder", "hashing")
    assert code == 2 and "unsupported store URL" in output
    code, output = _run("profile", "get", "nobody", "--store", f"sqlite:///{tmp_path}/p.db")
    assert code == 2 and "no profile for user 'nobody'" in output
    code, output = _run("run", str(events), "--short-half-life", "soon", "--encoder", "hashing")
    assert code == 2 and "bad duration 'soon'" in output


def test_profile_get_prints_the_update_record(tmp_path: Path):
    events = _write(tmp_path / "e.jsonl", generate(users=2, events_per_user=10).events)
    url = f"sqlite:///{tmp_path}/p.db"
    assert _run("run", str(events), "--store", url, "--encoder", "hashing")[0] == 0
    code, output = _run("profile", "get", "user-00001", "--store", url, "--json", "--vectors")
    record = json.loads(output)
    assert code == 0 and record["user_id"] == "user-00001" and record["event_count"] == 10
    assert len(record["long"]) == 384 and record["clusters"]


def test_generate_writes_the_event_contract(tmp_path: Path):
    out = tmp_path / "g.jsonl"
    code, _ = _run("generate", "--users", "3", "--events-per-user", "4", "-o", str(out))
    lines = out.read_text().splitlines()
    assert code == 0 and len(lines) == 12
    assert {"event_id", "user_id", "ts", "type", "text"} <= set(json.loads(lines[0]))


def _rating(n: int, user: str, ts: object, text: str = "A film") -> dict:
    return {
        "event_id": f"{user}-{n}",
        "user_id": user,
        "ts": ts,
        "type": "review",
        "text": text,
        "item_id": f"i{n}",
        "rating": 4,
    }


def test_run_accepts_a_1990s_log_by_default(tmp_path: Path):
    events = [_rating(n, "u", f"1997-09-{20 + n:02d}T10:00:00Z", f"Film {n}") for n in range(5)]
    path = _write(tmp_path / "old.jsonl", events)
    url = f"sqlite:///{tmp_path}/p.db"
    code, output = _run("run", str(path), "--store", url, "--encoder", "hashing", "--json")
    summary = json.loads(output)
    assert code == 0 and summary["applied"] == 5 and summary["rejected"] == 0


def test_run_warns_loudly_and_fails_when_many_timestamps_are_rejected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    events = [_rating(n, "u", f"1997-09-{1 + n % 28:02d}T10:00:00Z") for n in range(40)]
    events += [_rating(100 + n, "u", 1_780_000_000_000 + n) for n in range(60)]
    path = _write(tmp_path / "mixed.jsonl", events)
    monkeypatch.setenv("INTEREST_STREAM_MIN_EVENT_TIME", "2000-01-01T00:00:00Z")
    args = ["run", str(path), "--store", f"sqlite:///{tmp_path}/p.db", "--encoder", "hashing"]
    result = CliRunner().invoke(main, [*args, "--rejects", str(tmp_path / "r.jsonl")])
    assert result.exit_code == 1
    warning = next(line for line in result.output.splitlines() if "warning:" in line)
    assert "40.0% of events (40 of 100) rejected: field 'ts': before 2000-01-01" in warning
    assert "set INTEREST_STREAM_MIN_EVENT_TIME to accept older events" in warning
    assert "Traceback" not in result.output


def test_garbage_timestamps_get_one_warning_line_per_reason(tmp_path: Path):
    good = [_rating(n, "u", 1_780_000_000_000 + n) for n in range(90)]
    garbage = [_rating(100 + n, "u", ts) for n, ts in enumerate([-5] * 4 + ["soon"] * 6)]
    path = _write(tmp_path / "garbage.jsonl", good + garbage)
    args = ["run", str(path), "--store", f"sqlite:///{tmp_path}/p.db", "--encoder", "hashing"]
    result = CliRunner().invoke(main, [*args, "--rejects", str(tmp_path / "r.jsonl")])
    warnings = [line for line in result.output.splitlines() if "warning:" in line]
    assert result.exit_code == 1 and len(warnings) == 2
    assert (
        "6.0% of events (6 of 100) rejected: field 'ts': Value error, must be RFC 3339"
        in (warnings[0])
    )
    assert "4.0% of events (4 of 100) rejected: field 'ts': before 1970-01-01" in warnings[1]


def test_the_summary_counts_distinct_texts_once(tmp_path: Path):
    # 3 texts repeated over 10 batches of 6 events: 30 texts per batch summed, 3 distinct.
    events = [_rating(n, f"u{n % 4}", 1_780_000_000_000 + n, f"Film {n % 3}") for n in range(60)]
    path = _write(tmp_path / "e.jsonl", events)
    code, output = _run(
        "run",
        str(path),
        "--store",
        f"sqlite:///{tmp_path}/p.db",
        "--encoder",
        "hashing",
        "--batch-size",
        "6",
        "--json",
    )
    summary = json.loads(output)
    assert code == 0 and summary["distinct_texts"] == 3 and summary["texts_encoded"] == 30
    code, output = _run(
        "run",
        str(path),
        "--store",
        f"sqlite:///{tmp_path}/q.db",
        "--encoder",
        "hashing",
        "--batch-size",
        "6",
    )
    assert "3 distinct texts" in output


def test_control_characters_are_escaped_in_the_summary_table(tmp_path: Path):
    events = [
        _rating(n, "u\x1b[2J", 1_780_000_000_000 + n, "Evil\x00film\x1b[31m") for n in range(3)
    ]
    path = _write(tmp_path / "e.jsonl", events)
    code, output = _run(
        "run", str(path), "--store", f"sqlite:///{tmp_path}/p.db", "--encoder", "hashing"
    )
    assert code == 0
    assert "\x00" not in output and "\x1b[2J" not in output and "\x1b[31m" not in output
    assert "\\x00" in output and "\\x1b" in output


def test_bench_clusters_reports_the_cluster_counts_of_a_store_run_built(tmp_path: Path):
    events = generate(users=12, events_per_user=30, seed=4).events
    url = f"sqlite:///{tmp_path}/p.db"
    code, _ = _run("run", str(_write(tmp_path / "e.jsonl", events)), "--store", url,
                   "--encoder", "hashing")  # fmt: skip
    assert code == 0
    code, output = _run("bench", "clusters", "--store", url, "--json")
    assert code == 0, output
    found = json.loads(output)
    assert found["users"] == 12
    by_events = found["clusters_by_events"]
    assert list(by_events) == ["20-49"]  # 30 events each (duplicates none)
    assert sum(by_events["20-49"].values()) == 12
    assert all(int(k) >= 1 for k in by_events["20-49"])
