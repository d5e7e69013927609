"""Sentiment of a review that carries no rating, scored with the sentence encoder itself.

Zero-shot: a review's vector is compared with anchor phrases of clear praise and clear
complaint (`model.sentiment.anchor_sentiment`). Reusing the encoder costs one tiny batch of
anchors per process and no new dependency.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from interest_stream.encoders.base import Encoder
from interest_stream.streams.model.sentiment import (
    NEGATIVE_ANCHORS,
    POSITIVE_ANCHORS,
    anchor_sentiment,
)


class SentimentScorer:
    """Scores encoded texts in -1 (negative) .. +1 (positive)."""

    def __init__(self, encoder: Encoder, gain: float = 12.0) -> None:
        self._encoder = encoder
        self._gain = gain
        self._anchors: tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]] | None = None

    def score(self, vectors: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
        """One score per row of `vectors` (unit vectors from the same encoder)."""
        if self._anchors is None:
            self._anchors = (
                self._encoder.encode(POSITIVE_ANCHORS),
                self._encoder.encode(NEGATIVE_ANCHORS),
            )
        return anchor_sentiment(vectors, *self._anchors, gain=self._gain)
