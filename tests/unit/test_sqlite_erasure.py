"""`forget` on the embedded SQLite store leaves no copy of the user's texts in the database
file or its WAL, and the files are private to their owner.

Profiles keep their texts (summary, cluster labels) in a zlib-compressed header, so a
plain grep would find nothing even before the erasure: the files are searched for the
texts both as they are and inside every zlib stream that starts anywhere in them. The
search is shown to find the texts before `forget`, so it can fail.
"""

from __future__ import annotations

import contextlib
import json
import stat
import time
import zlib
from pathlib import Path

from click.testing import CliRunner

from interest_stream.store import open_store
from interest_stream.streams.cli import main

SECRET_WORDS = ("quokkaberry", "zanzibarite", "plumblossomed")
USERS = ("forgotten-user", "kept-user")


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def _texts(user: str, i: int) -> str:
    if user == "forgotten-user":
        return f"{SECRET_WORDS[i % 3]} {SECRET_WORDS[(i + 1) % 3]} story number {i}"
    return f"ordinary cooking video number {i}"


def _zlib_streams(data: bytes) -> list[bytes]:
    """What every zlib stream starting anywhere in `data` inflates to (up to 1 MB)."""
    found = []
    start = data.find(b"\x78")
    while start != -1:
        if start + 1 < len(data) and (data[start] << 8 | data[start + 1]) % 31 == 0:
            inflate = zlib.decompressobj()
            with contextlib.suppress(zlib.error):
                found.append(inflate.decompress(data[start : start + 1_048_576], 1_048_576))
        start = data.find(b"\x78", start + 1)
    return found


def _copies_of_secrets(db: Path) -> list[str]:
    """Where any of SECRET_WORDS is in the database file or its WAL, plainly or zipped."""
    where = []
    for path in (db, db.with_name(db.name + "-wal")):
        if not path.exists():
            continue
        data = path.read_bytes()
        for word in SECRET_WORDS:
            if word.encode() in data:
                where.append(f"{path.name}: {word}")
            if any(word.encode() in inflated for inflated in _zlib_streams(data)):
                where.append(f"{path.name}: {word} (compressed)")
    return where


def test_forget_leaves_no_byte_of_the_users_texts_in_the_file_or_the_wal(tmp_path: Path):
    now_ms = int(time.time() * 1000)
    events = [
        {
            "event_id": f"{user}-{i}",
            "user_id": user,
            "ts": now_ms - (40 - i) * 60_000,
            "type": "click",
            "text": _texts(user, i),
        }
        for i in range(40)
        for user in USERS
    ]
    db = tmp_path / "p.db"
    url = f"sqlite:///{db}"
    # A reader that stays open, as a long-running process would: the last connection's
    # close checkpoints the WAL by itself, which would hide a forget that does not.
    reader = open_store(url)
    try:
        for part in range(4):  # several runs: several versions of each profile written
            log = tmp_path / f"events-{part}.jsonl"
            log.write_text(
                "".join(json.dumps(e) + "\n" for e in events[part * 20 : part * 20 + 20])
            )
            code, output = _run("run", str(log), "--store", url, "--encoder", "hashing", "--json")
            assert code == 0, output
        wal = db.with_name(db.name + "-wal")
        assert wal.stat().st_size > 0
        before = _copies_of_secrets(db)
        assert any("-wal" in w for w in before), "nothing found before forget: cannot fail"

        code, output = _run("forget", "forgotten-user", "--store", url, "--no-kafka", "--json")
        assert code == 0, output
        assert _copies_of_secrets(db) == []
        assert wal.stat().st_size == 0  # checkpointed and truncated
        # the other user is intact
        assert reader.user_ids() == ["kept-user"]
        assert reader.get(["kept-user"])["kept-user"].event_count == 40
    finally:
        reader.close()


def test_the_database_files_are_private_to_their_owner(tmp_path: Path):
    db = tmp_path / "private.db"
    store = open_store(f"sqlite:///{db}")
    try:
        for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    finally:
        store.close()


def test_an_existing_database_file_keeps_its_mode(tmp_path: Path):
    db = tmp_path / "shared.db"
    open_store(f"sqlite:///{db}").close()
    db.chmod(0o640)
    open_store(f"sqlite:///{db}").close()
    assert stat.S_IMODE(db.stat().st_mode) == 0o640
