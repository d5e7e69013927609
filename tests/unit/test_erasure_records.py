"""Erasure records are keyed once per store: another key would silently lose them."""

from __future__ import annotations

from pathlib import Path

import pytest

from interest_stream.store.sqlite import SqliteStore
from interest_stream.streams.errors import StoreRefusedError


def test_a_store_refuses_an_erasure_key_other_than_its_records_were_written_with(
    tmp_path: Path,
):
    path = tmp_path / "p.db"
    first = SqliteStore(path, erasure_key="the-original-secret")
    first.erase("alice", fence="embedded", at=1.7e9, reason="user-request")
    first.close()
    same = SqliteStore(path, erasure_key="the-original-secret")
    assert "alice" in same.erased(["alice"])
    same.close()
    other = SqliteStore(path, erasure_key="another-secret")
    with pytest.raises(StoreRefusedError, match="not the key this store's erasure records"):
        other.erased(["alice"])
    other.close()


def test_records_of_plain_ids_are_keyed_once_whatever_the_ids_look_like(tmp_path: Path):
    import sqlite3

    path = tmp_path / "p.db"
    SqliteStore(path).close()
    hexlike = "a" * 64  # an id that looks like a keyed hash
    db = sqlite3.connect(path)
    db.execute("DELETE FROM meta WHERE key = 'setting:erasures_keyed'")  # an older file
    db.execute("INSERT INTO erasures VALUES (?, 1.7e9, 'user-request', NULL)", (hexlike,))
    db.commit()
    db.close()
    store = SqliteStore(path)
    assert hexlike in store.erased([hexlike])
    store.close()
