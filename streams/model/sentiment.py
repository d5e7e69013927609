"""Sentiment as arithmetic: a rating's sentiment, an event's weight (type times sentiment)
and the zero-shot anchor score of an encoded text. The encoder that produces the vectors
lives outside the model (streams/core/sentiment.py)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from interest_stream.streams.model.horizons import InterestParams

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


def anchor_sentiment(
    vectors: npt.NDArray[np.floating],
    positive: npt.NDArray[np.floating],
    negative: npt.NDArray[np.floating],
    gain: float = 12.0,
) -> npt.NDArray[np.float64]:
    """-1..+1 per row of `vectors`: tanh(gain x (mean cosine to the positive anchors minus
    mean cosine to the negative ones)); all unit vectors of one encoder."""
    rows = np.asarray(vectors, dtype=np.float64)
    margin = (rows @ np.asarray(positive, np.float64).T).mean(axis=1) - (
        rows @ np.asarray(negative, np.float64).T
    ).mean(axis=1)
    scores: npt.NDArray[np.float64] = np.tanh(gain * margin)
    return scores


def rating_sentiment(rating: float) -> float:
    """Map a 1..5 rating onto -1..+1 around the neutral 3."""
    return (rating - 3.0) / 2.0


def event_weight(
    event_type: str,
    params: InterestParams,
    *,
    rating: float | None = None,
    text_sentiment: float | None = None,
) -> float:
    """Type weight times sentiment; negative weights push the profile away from the text."""
    base = params.type_weights.get(event_type, 0.0)
    if event_type != "review":
        return base
    if rating is not None:
        return base * rating_sentiment(rating)
    return base * (0.0 if text_sentiment is None else text_sentiment)
