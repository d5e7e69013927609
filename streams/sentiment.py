"""Sentiment of a review that carries no rating, scored with the sentence encoder itself.

Zero-shot: a review's vector is compared with anchor phrases of clear praise and clear
complaint; the difference of mean cosines, scaled and squashed by tanh, gives -1..+1.
Reusing the encoder costs one tiny batch of anchors per process and no new dependency;
its accuracy on the labelled set in tests/data is measured by the test suite.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from encoders.base import Encoder

POSITIVE_ANCHORS = (
    "I loved it, absolutely wonderful.",
    "Excellent, highly recommended.",
    "Great quality, I am very happy with it.",
    "The best one I have ever had, five stars.",
    "Fantastic, delightful and worth every penny.",
    "Works perfectly, really impressed.",
)
NEGATIVE_ANCHORS = (
    "I hated it, absolutely terrible.",
    "Awful, do not recommend.",
    "Poor quality, I am very disappointed.",
    "The worst one I have ever had, one star.",
    "Boring, a complete waste of money.",
    "Broke immediately, really annoyed.",
)


class SentimentScorer:
    """Scores encoded texts in -1 (negative) .. +1 (positive)."""

    def __init__(self, encoder: Encoder, gain: float = 12.0) -> None:
        self._encoder = encoder
        self._gain = gain
        self._anchors: tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]] | None = None

    def _anchor_vectors(self) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        if self._anchors is None:
            self._anchors = (
                self._encoder.encode(POSITIVE_ANCHORS),
                self._encoder.encode(NEGATIVE_ANCHORS),
            )
        return self._anchors

    def score(self, vectors: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
        """One score per row of `vectors` (unit vectors from the same encoder)."""
        positive, negative = self._anchor_vectors()
        rows = np.asarray(vectors, dtype=np.float64)
        margin = (rows @ positive.T).mean(axis=1) - (rows @ negative.T).mean(axis=1)
        scores: npt.NDArray[np.float64] = np.tanh(self._gain * margin)
        return scores
