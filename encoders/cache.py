"""An LRU of text vectors in front of any encoder.

Event streams repeat themselves: the same item titles are clicked all day and popular
queries recur, so most texts in a batch were encoded minutes ago. Keys are the inner
model_id plus a digest of the NFC-normalized, stripped text, so a cache can never serve a
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
import numpy.typing as npt

from interest_stream.encoders.base import Encoder, OnDevice, Vectors, Wrapping

InnerEncoder = TypeVar("InnerEncoder", bound=Encoder)


def text_key(model_id: str, text: str) -> str:
    """The cache key of a text; texts that encode alike share it.

    Args:
        model_id: The encoder's model id (vectors of other models never mix).
        text: The text, before NFC normalization and trimming.

    Returns:
        `model_id:sha1-of-the-normalized-text`.
    """
    canonical = unicodedata.normalize("NFC", text).strip()
    return f"{model_id}:{hashlib.sha1(canonical.encode('utf-8')).hexdigest()}"


class CachedEncoder(Wrapping[InnerEncoder]):
    """Encoder protocol with at most `capacity` vectors kept, least recently used evicted.

    Texts repeated within one call are encoded once. Thread-safe; the inner encoder is
    called outside the lock, so two threads may occasionally encode the same new text.
    `model_id`, `dim` and `device` are the inner encoder's.

    Args:
        inner: The encoder that computes vectors not in the cache.
        capacity: At most this many vectors kept (0: none).

    Raises:
        ValueError: `capacity` is negative.
    """

    def __init__(self, inner: InnerEncoder, capacity: int) -> None:
        if capacity < 0:
            raise ValueError("capacity must be >= 0")
        super().__init__(inner)
        self._capacity = capacity
        self._entries: OrderedDict[str, npt.NDArray[np.float32]] = OrderedDict()
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
        return len(self._entries)

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
        missing: dict[str, list[int]] = {}
        with self._lock:
            for row, key in enumerate(keys):
                cached = self._entries.get(key)
                if cached is not None:
                    self._entries.move_to_end(key)
                    result[row] = cached
                    self.hits += 1
                else:
                    # Repeats of a new text within the call count as hits of its first copy.
                    if key in missing:
                        self.hits += 1
                    else:
                        self.misses += 1
                    missing.setdefault(key, []).append(row)
        if not missing:
            return result

        first_rows = [rows[0] for rows in missing.values()]
        fresh = self._inner.encode([texts[row] for row in first_rows])
        for vector, rows in zip(fresh, missing.values(), strict=True):
            result[rows] = vector
        if self._capacity:
            with self._lock:
                for key, vector in zip(missing, fresh, strict=True):
                    # Copies, so callers mutating their result cannot corrupt the cache.
                    self._entries[key] = vector.copy()
                    self._entries.move_to_end(key)
                while len(self._entries) > self._capacity:
                    self._entries.popitem(last=False)
        return result
