"""Sentiment as arithmetic: a rating's sentiment, an event's weight (type times sentiment)
and the sentiment of an encoded text, from a small linear head fitted on the encoder's
vectors (`SentimentHead`) or, for an encoder no head was fitted for, zero-shot from anchor
phrases. The encoder that produces the vectors and the file the head ships in live outside
the model (streams/core/sentiment.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from interest_stream.streams.errors import ConfigurationError
from interest_stream.streams.model.horizons import InterestParams

SENTIMENT_CLASSES = ("negative", "neutral", "positive")
HEAD_FORMAT = "interest-stream sentiment head v1"

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


@dataclass(frozen=True, eq=False)
class SentimentHead:
    """Softmax regression over one encoder's unit vectors: negative, neutral, positive.

    The score of a text is p(positive) - p(negative) in -1..+1, so a text that is neither
    (a tag, a title, a note) scores about 0 instead of being forced to a side. Scores within
    `neutral_band` of 0 become exactly 0 and the rest are stretched back onto -1..+1: an
    uncertain text moves the profile not at all rather than a little in a random direction.
    The weights only mean something in the vector space of the encoder named by
    `model_prefix` (any precision of it: the int8 and fp32 exports agree to ~0.99 cosine).
    """

    model_prefix: str
    weights: npt.NDArray[np.float64]  # (3, dim), rows in SENTIMENT_CLASSES order
    bias: npt.NDArray[np.float64]  # (3,)
    neutral_band: float = 0.1

    def __post_init__(self) -> None:
        weights = np.asarray(self.weights, dtype=np.float64)
        bias = np.asarray(self.bias, dtype=np.float64)
        if weights.ndim != 2 or weights.shape[0] != len(SENTIMENT_CLASSES):
            raise ConfigurationError(
                f"sentiment head weights must be (3, dim), got {weights.shape}"
            )
        if bias.shape != (len(SENTIMENT_CLASSES),):
            raise ConfigurationError(f"sentiment head bias must be (3,), got {bias.shape}")
        if not (np.isfinite(weights).all() and np.isfinite(bias).all()):
            raise ConfigurationError("sentiment head has non-finite weights")
        if not 0.0 <= self.neutral_band < 1.0:
            raise ConfigurationError(f"neutral band must be in [0, 1), got {self.neutral_band}")
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "bias", bias)

    @property
    def dim(self) -> int:
        return int(self.weights.shape[1])

    def fits(self, model_id: str, dim: int) -> bool:
        """Whether vectors of the encoder `model_id` ("name:precision:digest") live in the
        space this head was fitted in."""
        return dim == self.dim and model_id.split(":", 1)[0] == self.model_prefix

    def probabilities(self, vectors: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
        """(n, 3) class probabilities, rows summing to 1."""
        logits = np.asarray(vectors, dtype=np.float64) @ self.weights.T + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        odds = np.exp(logits)
        probabilities: npt.NDArray[np.float64] = odds / odds.sum(axis=1, keepdims=True)
        return probabilities

    def score(self, vectors: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
        """-1..+1 per row: p(positive) - p(negative), zero within the neutral band."""
        p = self.probabilities(vectors)
        raw = p[:, 2] - p[:, 0]
        scores: npt.NDArray[np.float64] = np.sign(raw) * np.clip(
            (np.abs(raw) - self.neutral_band) / (1.0 - self.neutral_band), 0.0, 1.0
        )
        return scores

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SentimentHead:
        """A head from its JSON form (`as_dict`); a malformed one is a ConfigurationError."""
        if data.get("format") != HEAD_FORMAT:
            raise ConfigurationError(f"not a sentiment head: format {data.get('format')!r}")
        if tuple(data.get("classes", ())) != SENTIMENT_CLASSES:
            raise ConfigurationError(f"sentiment head classes must be {SENTIMENT_CLASSES}")
        try:
            return cls(
                model_prefix=str(data["model_prefix"]),
                weights=np.array(data["weights"], dtype=np.float64),
                bias=np.array(data["bias"], dtype=np.float64),
                neutral_band=float(data.get("neutral_band", 0.0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigurationError(f"malformed sentiment head: {exc}") from exc

    def as_dict(self, **about: Any) -> dict[str, Any]:
        """The JSON form; `about` adds provenance (what it was fitted on, how, attribution)."""
        return {
            "format": HEAD_FORMAT,
            **about,
            "model_prefix": self.model_prefix,
            "dim": self.dim,
            "classes": list(SENTIMENT_CLASSES),
            "neutral_band": self.neutral_band,
            "bias": [round(float(b), 6) for b in self.bias],
            "weights": [[round(float(w), 6) for w in row] for row in self.weights],
        }


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
