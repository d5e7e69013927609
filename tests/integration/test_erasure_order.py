"""The tombstone of a forgotten user is the user's latest record on profile-updates, even
when a worker stored the user's profile before the erasure and publishes its update after
it: the worker is held (a pause point across processes) between its write and its publish
while `forget` erases the user, then released."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from interest_stream.store import open_store
from interest_stream.streams.core import pauses
from tests.integration.harness import (
    WorkerProcess,
    event_messages,
    publish,
    read_topic,
    wait_until,
)

pytestmark = [pytest.mark.kafka, pytest.mark.cassandra, pytest.mark.slow]

USER = "erase-while-publishing"


def test_a_publish_held_across_the_erasure_lands_before_the_tombstone(
    cluster: dict[str, str], tmp_path: Path
) -> None:
    holds = tmp_path / "holds"
    holds.mkdir()
    hold = holds / pauses.BEFORE_PUBLISH
    hold.touch()
    now_ms = int(time.time() * 1000)
    events = [
        {
            "event_id": f"{USER}-{i}",
            "user_id": USER,
            "ts": now_ms - 60_000 + i,
            "type": "click",
            "text": f"Astronauts stranded on Mars, part {i}",
        }
        for i in range(5)
    ]
    publish(cluster["bootstrap"], cluster["prefix"], event_messages(events))
    worker = WorkerProcess(
        bootstrap=cluster["bootstrap"],
        prefix=cluster["prefix"],
        store_url=cluster["store"],
        log_path=tmp_path / "worker.log",
        env={"INTEREST_STREAM_FAULT_HOLD_DIR": str(holds)},
    ).start()
    forget = None
    try:
        # Stored, not yet announced.
        reached = holds / f"{pauses.BEFORE_PUBLISH}.reached"
        wait_until(reached.exists, 120, "the worker held before its publish", worker.log_tail)
        command = [
            sys.executable, "-m", "interest_stream.streams.cli", "forget", USER,
            "--store", cluster["store"], "--brokers", cluster["bootstrap"],
            "--topic-prefix", cluster["prefix"], "--group", cluster["prefix"] + "group",
            "--wait", "90", "--json",
        ]  # fmt: skip
        forget = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        store = open_store(cluster["store"])
        try:
            wait_until(lambda: USER in store.erased([USER]), 60, "the erasure recorded")
        finally:
            store.close()
        hold.unlink()  # the worker goes on: its update of the erased profile goes out now
        out, err = forget.communicate(timeout=180)
        assert forget.returncode == 0, out.decode() + err.decode()
        assert json.loads(out)["records_behind"] == 0
        assert worker.alive(), worker.log_tail()
    finally:
        if forget is not None and forget.poll() is None:
            forget.kill()
        worker.stop()
    records = [
        m
        for m in read_topic(
            cluster["bootstrap"], cluster["prefix"] + "profile-updates", timeout_s=5
        )
        if m.key == USER.encode()
    ]
    assert len(records) >= 2  # the held update, and the tombstone after it
    assert records[-1].value is None, "an update of the erased user came after its tombstone"
