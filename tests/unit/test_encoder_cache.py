"""The encoder cache's memory: rows reused on eviction, and all of it resident at once when
a long-running process reserves it (so its memory does not climb for minutes as it fills)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence

import numpy as np

from interest_stream.encoders.base import Vectors
from interest_stream.encoders.cache import CachedEncoder

DIM = 384


class DigestEncoder:
    """A model-free encoder whose vector is a function of the text alone."""

    model_id = "digest-test"
    dim = DIM

    def encode(self, texts: Sequence[str]) -> Vectors:
        digests = b"".join(hashlib.blake2b(t.encode(), digest_size=64).digest() for t in texts)
        codes = np.frombuffer(digests, dtype=np.uint8).reshape(len(texts), 64)
        vectors = np.tile(codes, (1, DIM // 64)).astype(np.float32) - 127.5
        unit: Vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        return unit


def _resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_evicted_rows_are_reused_with_the_right_vectors() -> None:
    inner = DigestEncoder()
    cache = CachedEncoder(inner, capacity=3)
    texts = [f"text {i}" for i in range(10)]
    for start in range(0, 10, 2):
        cache.encode(texts[start : start + 2])
    assert len(cache) == 3
    # The three most recent (7, 8, 9) are answered from rows that held evicted texts.
    hits = cache.hits
    np.testing.assert_array_equal(cache.encode(texts[7:]), inner.encode(texts[7:]))
    assert cache.hits == hits + 3
    np.testing.assert_array_equal(cache.encode(texts[:2]), inner.encode(texts[:2]))


def _growth_while_filling(reserve: bool, capacity: int) -> tuple[int, int]:
    cache = CachedEncoder(DigestEncoder(), capacity=capacity, reserve=reserve)
    before = _resident_bytes()
    for start in range(0, capacity, 500):
        cache.encode([f"title {i}" for i in range(start, start + 500)])
    assert len(cache) == capacity
    return _resident_bytes() - before, capacity * DIM * 4


def test_a_reserved_cache_is_resident_before_it_fills() -> None:
    # 30,000 vectors: 46 MB of rows. Filling a reserved cache adds only its keys (~5 MB);
    # an unreserved one grows by its rows as they are written (the check that this
    # measurement sees them at all).
    reserved, rows = _growth_while_filling(reserve=True, capacity=30_000)
    assert reserved < 0.25 * rows, f"{reserved / 2**20:.1f} MiB grown for {rows / 2**20:.0f}"
    lazy, rows = _growth_while_filling(reserve=False, capacity=30_000)
    assert lazy > 0.7 * rows, f"{lazy / 2**20:.1f} MiB grown for {rows / 2**20:.0f}"
