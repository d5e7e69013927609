"""`forget` on the embedded store: a user's profile goes, the erasure is kept, replays of
their old events do not bring the profile back, and later events start a new one."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from interest_stream.store import open_store
from interest_stream.streams.cli import main
from interest_stream.streams.demo import generate


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_forget_erases_for_good_and_a_later_user_starts_anew(tmp_path: Path):
    events = generate(users=3, events_per_user=20, seed=4).events
    log = tmp_path / "events.jsonl"
    log.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    url = f"sqlite:///{tmp_path}/p.db"
    assert _run("run", str(log), "--store", url, "--encoder", "hashing", "--json")[0] == 0

    code, output = _run("forget", "user-00001", "--store", url, "--no-kafka", "--json")
    assert code == 0, output
    assert json.loads(output) == {
        "user_id": "user-00001",
        "had_profile": True,
        "tombstone": False,
        "records_behind": 0,
    }
    store = open_store(url)
    try:
        assert "user-00001" not in store.user_ids() and len(store.user_ids()) == 2
        erased_at = store.erased(["user-00001"])["user-00001"].at
        assert abs(erased_at - time.time()) < 60
    finally:
        store.close()

    # The same events again, from another file (new offsets): the erased user stays gone.
    replay = tmp_path / "replay.jsonl"
    replay.write_text(log.read_text(), encoding="utf-8")
    code, output = _run("run", str(replay), "--store", url, "--encoder", "hashing", "--json")
    assert code == 0 and json.loads(output)["applied"] == 0, output
    # Forgetting again is harmless.
    code, output = _run("forget", "user-00001", "--store", url, "--no-kafka", "--json")
    assert code == 0 and json.loads(output)["had_profile"] is False

    # Activity after the erasure is a new start: only the new event counts.
    later = {
        **events[0],
        "event_id": "after-forget",
        "user_id": "user-00001",
        "ts": int(time.time() * 1000) + 60_000,
    }
    fresh = tmp_path / "later.jsonl"
    fresh.write_text(json.dumps(later) + "\n", encoding="utf-8")
    code, output = _run("run", str(fresh), "--store", url, "--encoder", "hashing", "--json")
    assert code == 0 and json.loads(output)["applied"] == 1, output
    store = open_store(url)
    try:
        profile = store.get(["user-00001"])["user-00001"]
        assert profile.event_count == 1 and profile.forgotten_at is not None
    finally:
        store.close()


def test_forget_reads_ids_from_a_file_and_explains_a_bad_one(tmp_path: Path):
    url = f"sqlite:///{tmp_path}/p.db"
    ids = tmp_path / "ids.txt"
    ids.write_text("# erasure requests\nalice\n\nbob\n", encoding="utf-8")
    code, output = _run("forget", "--from", str(ids), "--store", url, "--no-kafka")
    assert code == 0
    assert "alice: no profile stored, erasure recorded" in output and "bob:" in output
    ids.write_text("x" * 200 + "\n", encoding="utf-8")
    code, output = _run("forget", "--from", str(ids), "--store", url, "--no-kafka")
    assert code == 2 and f"{ids}:1: field 'user_id'" in output
    assert "Traceback" not in output


def test_forget_on_an_embedded_store_needs_no_kafka_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("INTEREST_STREAM_BROKERS", raising=False)
    url = f"sqlite:///{tmp_path}/p.db"
    code, output = _run("forget", "user-00001", "--store", url, "--json")
    assert code == 0, output
    assert json.loads(output)["tombstone"] is False


def test_forget_with_named_brokers_that_cannot_be_reached_names_no_kafka(tmp_path: Path):
    url = f"sqlite:///{tmp_path}/p.db"
    # A port nothing listens on: the broker list was named, so forget tries Kafka.
    code, output = _run("forget", "user-00001", "--store", url, "--brokers", "127.0.0.1:9")
    assert code == 2
    assert len(output.strip().splitlines()) == 1 and "add --no-kafka" in output, output
