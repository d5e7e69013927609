"""The right to be forgotten, proven on real servers and a running worker, on both stores:
a user is erased while the worker runs, the input topics are replayed from the beginning
by a fresh consumer group, and the profile does not come back; the update topic's latest
record for the user is a tombstone, and no table holds a row or a vector of the user."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from interest_stream.store import open_store
from interest_stream.streams.cli import main
from tests.integration.harness import (
    WorkerProcess,
    create_topics,
    event_messages,
    publish,
    read_topic,
    wait_until,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

USER = "forget-me"
HOUR_MS = 3_600_000


def _events(user_id: str, start_ms: int, count: int, tag: str) -> list[dict[str, Any]]:
    return [
        {
            "event_id": f"{tag}-{user_id}-{i}",
            "user_id": user_id,
            "ts": start_ms + i * 1000,
            "type": "click",
            "text": f"Astronauts stranded on Mars, part {i % 3}",
            "domain": "movies",
        }
        for i in range(count)
    ]


def _store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/profiles.db"
    keyspace = request.getfixturevalue("keyspace")
    host, port = request.getfixturevalue("cassandra_contact")
    url = f"cassandra://{host}:{port}/{keyspace}"
    open_store(url, create_schema=True).close()
    return url


@pytest.fixture(params=["sqlite", pytest.param("cassandra", marks=pytest.mark.cassandra)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return _store_url(request, tmp_path)


def _has(store_url: str, user_id: str) -> bool:
    store = open_store(store_url)
    try:
        return user_id in store.get([user_id])
    finally:
        store.close()


def _rows_of(store_url: str, user_id: str, request: pytest.FixtureRequest) -> dict[str, int]:
    """Rows holding the user in every table (the erasure record aside)."""
    if store_url.startswith("sqlite"):
        db = sqlite3.connect(store_url.removeprefix("sqlite:///"))
        try:
            found = db.execute("SELECT count(*) FROM profiles WHERE user_id = ?", (user_id,))
            return {"profiles": found.fetchone()[0]}
        finally:
            db.close()
    session = request.getfixturevalue("cassandra_session")
    keyspace = store_url.rsplit("/", 1)[1]
    counts = {}
    for table in ("profiles", "profile_domains", "profile_ann"):
        rows = session.execute(
            f"SELECT count(*) FROM {keyspace}.{table} WHERE user_id = %s", (user_id,)
        ).one()
        counts[table] = rows[0]
    return counts


def test_a_forgotten_user_stays_forgotten_through_a_full_replay(
    kafka_bootstrap: str,
    topic_prefix: str,
    store_url: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    create_topics(kafka_bootstrap, topic_prefix)
    now_ms = int(time.time() * 1000)
    mine = _events(USER, now_ms - 2 * HOUR_MS, 12, "old")
    others = _events("keep-me", now_ms - 2 * HOUR_MS, 12, "old")
    publish(kafka_bootstrap, topic_prefix, event_messages(mine + others))
    common: dict[str, Any] = {
        "bootstrap": kafka_bootstrap,
        "prefix": topic_prefix,
        "store_url": store_url,
        "batch_size": 16,
    }
    worker = WorkerProcess(log_path=tmp_path / "worker.log", **common).start()
    try:
        wait_until(lambda: _has(store_url, USER), 120, "the user's profile", worker.log_tail)
        result = CliRunner().invoke(
            main,
            [
                "forget",
                USER,
                "--store",
                store_url,
                "--brokers",
                kafka_bootstrap,
                "--topic-prefix",
                topic_prefix,
                "--group",
                topic_prefix + "group",
                "--reason",
                "erasure request #42",
            ],
            catch_exceptions=False,
        )
        assert result.exit_code == 0, result.output
        assert f"{USER}: profile erased, erasure recorded; tombstone published" in result.output
        # More of the user's old activity arriving late, while the worker runs.
        publish(
            kafka_bootstrap,
            topic_prefix,
            event_messages(_events(USER, now_ms - HOUR_MS, 5, "late")),
        )
        time.sleep(3)
        assert not _has(store_url, USER), worker.log_tail()
    finally:
        worker.stop()

    # Replay everything from the beginning with a fresh consumer group.
    replayer = WorkerProcess(
        log_path=tmp_path / "replay.log", group=f"{topic_prefix}replay", **common
    ).start()
    try:
        marker = _events("replay-marker", now_ms, 1, "marker")
        publish(kafka_bootstrap, topic_prefix, event_messages(marker))
        wait_until(
            lambda: _has(store_url, "replay-marker"), 120, "the replay to finish", replayer.log_tail
        )
    finally:
        replayer.stop()
    assert not _has(store_url, USER)
    assert _has(store_url, "keep-me")
    assert set(_rows_of(store_url, USER, request).values()) == {0}
    store = open_store(store_url)
    try:
        assert USER in store.erased([USER])
    finally:
        store.close()
    updates = read_topic(kafka_bootstrap, f"{topic_prefix}profile-updates", timeout_s=5)
    latest = [m for m in updates if m.key == USER.encode()][-1]
    assert latest.value is None  # the tombstone is the last word on the user
    erased_at = max(m.timestamp for m in updates if m.key == USER.encode() and m.value is None)
    assert all(
        json.loads(m.value)["user_id"] != USER
        for m in updates
        if m.value is not None and m.timestamp > erased_at
    )
