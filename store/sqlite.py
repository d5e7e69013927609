"""SQLite profile store: the embedded default, one file, no server.

WAL mode so readers (`profile get`) never block the writer; one transaction per `apply`.
Erased data is not left behind: the file is created readable by its owner only (SQLite
gives its -wal and -shm files the same mode), `secure_delete` overwrites deleted rows and
freed pages with zeros, and after an erasure or an item deletion the WAL is checkpointed
and truncated, so no earlier copy of the deleted pages stays in it.
Fences are a table of epochs: a writer claims a fence (the next epoch) before it reads the
profiles under it, and a write under it wins only while the epoch is still this store's; the
stored version must also still be the expected one (a conditional UPDATE/INSERT whose row
count says who won), which protects two embedded writers sharing one file.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from interest_stream.store.base import (
    ALL_FENCES,
    ApplyResult,
    ErasureRecord,
    ProfileWrite,
    StoredItem,
    check_reason,
    erasure_key,
    erasure_subject,
)
from interest_stream.streams.errors import ConfigurationError, StoreError, StoreRefusedError
from interest_stream.streams.interest.codec import (
    ProfileFormatError,
    decode_profile,
    encode_profile,
)
from interest_stream.streams.interest.profile import UserProfile

LAYOUT = "3"
"""Written to `meta` at creation; an older file (no meta, or another value) is refused."""

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS profiles (
        user_id     TEXT PRIMARY KEY,
        version     INTEGER NOT NULL,
        model_id    TEXT NOT NULL,
        updated_at  REAL NOT NULL,
        event_count INTEGER NOT NULL,
        state       BLOB NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS fences (name TEXT PRIMARY KEY, epoch INTEGER NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS erasures (
        user_id   TEXT PRIMARY KEY,
        erased_at REAL NOT NULL,
        reason    TEXT NOT NULL,
        before    TEXT
    )""",
    """CREATE TABLE IF NOT EXISTS items (
        item_id  TEXT PRIMARY KEY,
        text     TEXT NOT NULL,
        domain   TEXT,
        model_id TEXT NOT NULL,
        vector   BLOB NOT NULL
    )""",
)


def path_from_url(url: str) -> Path:
    """`sqlite:///relative.db` and `sqlite:////abs/path.db` (SQLAlchemy's convention)."""
    parts = urlsplit(url)
    if parts.scheme != "sqlite" or not parts.path or parts.path == "/":
        raise ConfigurationError(f"bad SQLite URL {url!r}: expected sqlite:///path/to/file.db")
    return Path(parts.path[1:])


def _create_private(path: Path) -> None:
    """Create the database file with mode 0600 unless it exists (an existing file keeps
    its mode: the operator chose it). Not through the umask, which is per process."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


class SqliteStore:
    """`ProfileStore` (and `ItemCatalog`) over one SQLite file."""

    def __init__(self, path: Path, *, erasure_key: str | None = None) -> None:
        self.path = path
        self._epochs: dict[str, int] = {}  # fences this store holds, by the epoch it took
        self._configured_key = erasure_key
        self._key: bytes | None = None
        try:
            if path.parent != Path(""):
                path.parent.mkdir(parents=True, exist_ok=True)
            _create_private(path)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA secure_delete=ON")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=10000")
            self._check_layout()
            for statement in _SCHEMA:
                self._db.execute(statement)
            erasure_columns = {row[1] for row in self._db.execute("PRAGMA table_info(erasures)")}
            if "before" not in erasure_columns:  # a file of this layout from before the bounds
                self._db.execute("ALTER TABLE erasures ADD COLUMN before TEXT")
            if self.setting("erasures_keyed") is None:
                self._hash_plain_erasures()  # once per file, whatever the ids look like
                self.keep_setting("erasures_keyed", "1")
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('layout', ?)", (LAYOUT,))
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open SQLite store {path}: {exc}") from exc

    @classmethod
    def from_url(cls, url: str, *, erasure_key: str | None = None) -> SqliteStore:
        return cls(path_from_url(url), erasure_key=erasure_key)

    def _check_layout(self) -> None:
        tables = {name for (name,) in self._db.execute("SELECT name FROM sqlite_master")}
        if "profiles" not in tables:
            return
        found = None
        if "meta" in tables:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'layout'").fetchone()
            found = row[0] if row else None
        if found != LAYOUT:
            raise StoreRefusedError(
                f"{self.path} holds profiles of an earlier layout (layout {found or 2}): this"
                " version cannot read them. Rebuild them into a new file (run the events"
                " again with --store sqlite:///new.db) or delete this one"
            )

    def _select_in(self, select: str, keys: Sequence[str]) -> list[tuple[Any, ...]]:
        """Rows of `select ... IN (?)` for distinct keys, in chunks under SQLite's variable cap."""
        ids = list(dict.fromkeys(keys))
        rows: list[tuple[Any, ...]] = []
        try:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                rows.extend(self._db.execute(select.format(",".join("?" * len(chunk))), chunk))
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read {self.path}: {exc}") from exc
        return rows

    def get(self, user_ids: Sequence[str]) -> dict[str, UserProfile]:
        rows = self._select_in(
            "SELECT user_id, state FROM profiles WHERE user_id IN ({})", user_ids
        )
        try:
            return {user_id: decode_profile(state) for user_id, state in rows}
        except ProfileFormatError as exc:
            raise StoreRefusedError(f"{self.path}: {exc}") from exc

    def _hash_plain_erasures(self) -> None:
        """Erasure records of an earlier version kept the user id itself: key them by its
        keyed hash, as every record is now (once per file)."""
        rows = self._db.execute("SELECT user_id FROM erasures").fetchall()
        for (user_id,) in rows:
            self._db.execute(
                "UPDATE OR REPLACE erasures SET user_id = ? WHERE user_id = ?",
                (self._subject(user_id), user_id),
            )

    def _bump_fence(self, fence: str) -> None:
        """Inside a transaction: claim `fence` away from its holder (ALL_FENCES: every one)."""
        if fence == ALL_FENCES:
            self._db.execute("UPDATE fences SET epoch = epoch + 1")
            self._epochs.clear()
        else:
            self._db.execute(
                "INSERT INTO fences VALUES (?, 1)"
                " ON CONFLICT(name) DO UPDATE SET epoch = epoch + 1",
                (fence,),
            )
            self._epochs.pop(fence, None)

    def _subject(self, user_id: str) -> str:
        """The erasure records' key for `user_id` (see store/base.py)."""
        if self._key is None:
            self._key = erasure_key(self._configured_key, self.keep_setting)
        return erasure_subject(user_id, self._key)

    def erased(self, user_ids: Sequence[str]) -> dict[str, ErasureRecord]:
        subjects = {self._subject(u): u for u in user_ids}
        rows = self._select_in(
            "SELECT user_id, erased_at, before FROM erasures WHERE user_id IN ({})", list(subjects)
        )
        return {
            subjects[subject]: ErasureRecord(float(at), json.loads(before) if before else {})
            for subject, at, before in rows
        }

    def bound_erasure(self, user_id: str, before: Mapping[str, int], *, fence: str) -> None:
        subject = self._subject(user_id)
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._bump_fence(fence)
            self._db.execute(
                "UPDATE erasures SET before = ? WHERE user_id = ?",
                (json.dumps(dict(before), sort_keys=True), subject),
            )
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise StoreError(f"cannot write {self.path}: {exc}") from exc

    def claim(self, fences: Collection[str]) -> set[str]:
        claimed = {fence for fence in fences if fence not in self._epochs}
        if not claimed:
            return claimed
        try:
            self._db.execute("BEGIN IMMEDIATE")
            epochs = {}
            for fence in sorted(claimed):
                row = self._db.execute(
                    "SELECT epoch FROM fences WHERE name = ?", (fence,)
                ).fetchone()
                epochs[fence] = (row[0] if row else 0) + 1
                self._db.execute(
                    "INSERT OR REPLACE INTO fences VALUES (?, ?)", (fence, epochs[fence])
                )
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise StoreError(f"cannot write {self.path}: {exc}") from exc
        self._epochs.update(epochs)
        return claimed

    def _hold(self, fence: str) -> bool:
        """Inside a transaction: whether this store still holds `fence` (claimed by `claim`
        and not claimed away since); a write under a fence not held loses."""
        row = self._db.execute("SELECT epoch FROM fences WHERE name = ?", (fence,)).fetchone()
        stored = row[0] if row else 0
        mine = self._epochs.get(fence)
        if mine is not None and stored == mine:
            return True
        self._epochs.pop(fence, None)  # claimed away: lose now, claim again before reading
        return False

    def apply(self, writes: Sequence[ProfileWrite]) -> ApplyResult:
        won: list[str] = []
        lost: list[str] = []
        written = 0
        try:
            self._db.execute("BEGIN IMMEDIATE")
            held = {fence: self._hold(fence) for fence in sorted({w.fence for w in writes})}
            for write in writes:
                profile = write.profile
                if not held[write.fence]:
                    lost.append(profile.user_id)
                    continue
                state = encode_profile(profile)
                row = (
                    profile.version,
                    profile.model_id,
                    profile.updated_at,
                    profile.event_count,
                    state,
                )
                if write.expected_version == 0:
                    cursor = self._db.execute(
                        "INSERT OR IGNORE INTO profiles (version, model_id, updated_at,"
                        " event_count, state, user_id) VALUES (?, ?, ?, ?, ?, ?)",
                        (*row, profile.user_id),
                    )
                else:
                    cursor = self._db.execute(
                        "UPDATE profiles SET version=?, model_id=?, updated_at=?, event_count=?,"
                        " state=? WHERE user_id=? AND version=?",
                        (*row, profile.user_id, write.expected_version),
                    )
                if cursor.rowcount == 1:
                    won.append(profile.user_id)
                    written += len(state)
                else:
                    lost.append(profile.user_id)
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            self._epochs.clear()  # a rolled-back claim is no claim
            raise StoreError(f"cannot write {self.path}: {exc}") from exc
        return ApplyResult(tuple(won), tuple(lost), written)

    def erase(self, user_id: str, *, fence: str, at: float, reason: str) -> bool:
        subject = self._subject(user_id)
        check_reason(reason)
        try:
            self._db.execute("BEGIN IMMEDIATE")
            # Fence out the writer of the user's partition: its cached copy is stale now.
            self._bump_fence(fence)
            cursor = self._db.execute("DELETE FROM profiles WHERE user_id = ?", (user_id,))
            self._db.execute(
                "INSERT OR REPLACE INTO erasures VALUES (?, ?, ?, NULL)", (subject, at, reason)
            )
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise StoreError(f"cannot erase in {self.path}: {exc}") from exc
        self._truncate_wal()
        return cursor.rowcount == 1

    def _truncate_wal(self) -> None:
        """Copy the WAL into the file and truncate it: the WAL still holds the pages as
        they were before a delete. A reader in the middle of a transaction can keep the
        checkpoint from finishing (SQLite waits for it up to busy_timeout)."""
        try:
            busy, _, _ = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot checkpoint {self.path}: {exc}") from exc
        if busy:
            raise StoreError(
                f"{self.path}: deleted, but a reader kept the WAL from being truncated (the"
                " deleted rows' earlier pages stay in it until the next checkpoint): run the"
                " command again, it is idempotent"
            )

    def user_ids(self, limit: int | None = None) -> list[str]:
        query = "SELECT user_id FROM profiles ORDER BY user_id"
        rows = self._db.execute(query + (" LIMIT ?" if limit else ""), (limit,) if limit else ())
        return [user_id for (user_id,) in rows]

    def setting(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (f"setting:{key}",))
        found = row.fetchone()
        return None if found is None else str(found[0])

    def keep_setting(self, key: str, value: str) -> str:
        try:
            self._db.execute("INSERT OR IGNORE INTO meta VALUES (?, ?)", (f"setting:{key}", value))
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write {self.path}: {exc}") from exc
        kept = self.setting(key)
        return value if kept is None else kept

    def get_items(self, item_ids: Sequence[str]) -> dict[str, StoredItem]:
        rows = self._select_in(
            "SELECT item_id, text, domain, model_id, vector FROM items WHERE item_id IN ({})",
            item_ids,
        )
        return {
            item_id: StoredItem(
                item_id, text, domain, model_id, np.frombuffer(vector, "<f4").astype(np.float32)
            )
            for item_id, text, domain, model_id, vector in rows
        }

    def put_items(self, items: Sequence[StoredItem]) -> None:
        rows = [
            (i.item_id, i.text, i.domain, i.model_id, np.asarray(i.vector, "<f4").tobytes())
            for i in items
        ]
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(
                "INSERT OR REPLACE INTO items (item_id, text, domain, model_id, vector)"
                " VALUES (?, ?, ?, ?, ?)",
                rows,
            )
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise StoreError(f"cannot write {self.path}: {exc}") from exc

    def delete_item(self, item_id: str) -> bool:
        try:
            cursor = self._db.execute("DELETE FROM items WHERE item_id=?", (item_id,))
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write {self.path}: {exc}") from exc
        if cursor.rowcount == 1:
            self._truncate_wal()
        return cursor.rowcount == 1

    def close(self) -> None:
        self._db.close()
