"""A deterministic feature-hashing encoder: no model, no files, same vector on every machine.

Used by tests that exercise the pipeline's plumbing rather than the semantics of the
sentence encoder, and by the pipeline benchmark to take encoding cost out of the figures.
Texts that share words get similar vectors, which is enough to make interests recoverable.
"""

from __future__ import annotations

import hashlib
import itertools
import unicodedata
from collections.abc import Sequence

import numpy as np

from interest_stream.encoders.base import Vectors


class HashingEncoder:
    """Bag of words (and word bigrams) hashed into signed random directions.

    Args:
        dim: Length of the vectors.
    """

    def __init__(self, dim: int = 384) -> None:
        self._dim = dim

    @property
    def model_id(self) -> str:
        """`hashing-<dim>`."""
        return f"hashing-{self._dim}"

    @property
    def dim(self) -> int:
        """Length of the vectors."""
        return self._dim

    def encode(self, texts: Sequence[str]) -> Vectors:
        """Encode texts, each the normalized sum of its words' and bigrams' directions.

        Args:
            texts: The texts.

        Returns:
            An array of shape (len(texts), dim), each row of unit length.
        """
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        for row, text in enumerate(texts):
            words = unicodedata.normalize("NFC", text).lower().split()
            features = words + [f"{a} {b}" for a, b in itertools.pairwise(words)]
            for feature in features or ["<empty>"]:
                digest = hashlib.blake2b(feature.encode(), digest_size=16).digest()
                seed = int.from_bytes(digest[:8], "little")
                rng = np.random.default_rng(seed)
                out[row] += rng.standard_normal(self._dim).astype(np.float32)
            norm = float(np.linalg.norm(out[row]))
            out[row] /= norm if norm > 0 else 1.0
        return out
