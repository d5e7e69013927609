"""An LRU of text vectors in front of any encoder.

Event streams repeat themselves: the same item titles are clicked all day and popular
queries recur, so most texts in a batch were encoded minutes ago. Keys are the inner
digest of the model_id and the NFC-normalized, stripped text, so a cache can never serve a
vector from other weights and near-identical spellings share an entry.
"""

from __future__ import annotations

import hashlib
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Sequence
from typing import TypeVar

import numpy as np

from interest_stream.encoders.base import Encoder, OnDevice, Vectors, Wrapping

InnerEncoder = TypeVar("InnerEncoder", bound=Encoder)


def text_key(model_id: str, text: str) -> bytes:
    """The cache key of a text; texts that encode alike share it.

    Args:
        model_id: The encoder's model id (vectors of other models never mix).
        text: The text, before NFC normalization and trimming.

    Returns:
        A 16-byte BLAKE2b digest of the model id and the normalized text (a collision
        among 10^5 keys has odds of about 10^-29; 49 bytes a key in memory, not the 139
        of a hex string).
    """
    canonical = unicodedata.normalize("NFC", text).strip()
    return hashlib.blake2b(f"{model_id}\0{canonical}".encode(), digest_size=16).digest()


class CachedEncoder(Wrapping[InnerEncoder]):
    """Encoder protocol with at most `capacity` vectors kept, least recently used evicted.

    Texts repeated within one call are encoded once. Thread-safe; the inner encoder is
    called outside the lock, so two threads may occasionally encode the same new text.
    `model_id`, `dim` and `device` are the inner encoder's.

    The vectors live in one (capacity, dim) float32 array, a row per entry, reused when an
    entry is evicted: no Python object per vector, and a known size. Untouched rows cost
    no memory until written, so a short command pays for what it encodes; with `reserve`
    every row is written at once, so a long-running process (the worker) holds its whole
    cache from the start and its resident memory does not climb for minutes as the cache
    fills (which a memory-growth check cannot tell from a leak).

    Args:
        inner: The encoder that computes vectors not in the cache.
        capacity: At most this many vectors kept (0: none).
        reserve: Make the whole cache resident now (capacity x dim x 4 bytes).

    Raises:
        ValueError: `capacity` is negative.
    """

    def __init__(self, inner: InnerEncoder, capacity: int, *, reserve: bool = False) -> None:
        if capacity < 0:
            raise ValueError("capacity must be >= 0")
        super().__init__(inner)
        self._capacity = capacity
        self._rows: OrderedDict[bytes, int] = OrderedDict()  # key -> row, least recent first
        self._vectors = np.empty((capacity, inner.dim), dtype=np.float32)
        if reserve:
            self._vectors.fill(0.0)
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def device(self) -> str:
        """Where the inner encoder runs ("cpu" for encoders that do not say)."""
        return self._inner.device if isinstance(self._inner, OnDevice) else "cpu"

    @property
    def hit_rate(self) -> float:
        """Share of the texts looked up that the cache answered (0 before any)."""
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else 0.0

    def __len__(self) -> int:
        """Vectors kept now."""
        return len(self._rows)

    def encode(self, texts: Sequence[str]) -> Vectors:
        """Encode texts, the ones not cached by the inner encoder (each once).

        Args:
            texts: The texts.

        Returns:
            An array of shape (len(texts), dim), row i encoding texts[i].
        """
        model_id = self._inner.model_id
        keys = [text_key(model_id, text) for text in texts]
        result = np.empty((len(texts), self._inner.dim), dtype=np.float32)
        missing: dict[bytes, list[int]] = {}
        wanted: list[int] = []
        found: list[int] = []
        with self._lock:
            for row, key in enumerate(keys):
                cached = self._rows.get(key)
                if cached is not None:
                    self._rows.move_to_end(key)
                    wanted.append(row)
                    found.append(cached)
                    self.hits += 1
                else:
                    # Repeats of a new text within the call count as hits of its first copy.
                    if key in missing:
                        self.hits += 1
                    else:
                        self.misses += 1
                    missing.setdefault(key, []).append(row)
            if found:
                result[wanted] = self._vectors[found]
        if not missing:
            return result

        first_rows = [rows[0] for rows in missing.values()]
        fresh = self._inner.encode([texts[row] for row in first_rows])
        for vector, rows in zip(fresh, missing.values(), strict=True):
            result[rows] = vector
        if self._capacity:
            with self._lock:
                for key, vector in zip(missing, fresh, strict=True):
                    self._vectors[self._row_for(key)] = vector
        return result

    def _row_for(self, key: bytes) -> int:
        """The row that holds `key` from now on, as the most recent entry.

        Its own row if cached (another thread stored it meanwhile), else the next unused
        one, else the least recent entry's.
        """
        row = self._rows.get(key)
        if row is None:
            if len(self._rows) < self._capacity:
                row = len(self._rows)
            else:
                _, row = self._rows.popitem(last=False)
            self._rows[key] = row
        self._rows.move_to_end(key)
        return row
