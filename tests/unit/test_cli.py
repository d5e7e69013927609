"""The embedded CLI as a user runs it: replays, shuffles, rejects and clear errors."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
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
