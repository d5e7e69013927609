"""Sentiment as arithmetic: a rating's sentiment, an event's weight (type times sentiment)
and the sentiment of an encoded text, from a small linear head fitted on the encoder's
vectors (`SentimentHead`) or, for an encoder no head was fitted for, zero-shot from anchor
phrases. The encoder that produces the vectors and the file the head ships in live outside
the model (streams/core/sentiment.py)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from interest_stream.streams.errors import ConfigurationError
from interest_stream.streams.interest.horizons import InterestParams

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
        return self.score_probabilities(self.probabilities(vectors))

    def score_probabilities(self, p: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
        """The score of (n, 3) class probabilities (see `score`)."""
        p = np.asarray(p, dtype=np.float64)
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


# Where a text is cut into pieces: after a sentence's end (., !, ?, …, optionally
# followed by closing quotes or brackets) and at line breaks.
_SENTENCE_END = re.compile(r"(?<=[.!?\u2026])\s+|(?<=[.!?\u2026][\"')\]])\s+|\s*\n+\s*")
# A piece shorter than this ("Wow.", "OK!") joins its neighbour: alone it says little.
MIN_PIECE_CHARS = 24
# Words per piece at most: a run-on "sentence" is cut within the encoder's window
# (about 1.3 tokens a word in English reviews; the encoder truncates at 256 tokens).
MAX_PIECE_WORDS = 120


def text_pieces(text: str) -> list[str]:
    """A text as the sentence-sized pieces its sentiment is read from: sentences, very
    short ones joined to the next (or the previous, at the end), run-on ones cut every
    `MAX_PIECE_WORDS` words. A one-sentence text is one piece: itself."""
    pieces: list[str] = []
    carry = ""
    for sentence in _SENTENCE_END.split(text.strip()):
        sentence = f"{carry} {sentence}".strip() if carry else sentence.strip()
        if not sentence:
            continue
        if len(sentence) < MIN_PIECE_CHARS:
            carry = sentence
            continue
        carry = ""
        words = sentence.split()
        for start in range(0, len(words), MAX_PIECE_WORDS):
            pieces.append(" ".join(words[start : start + MAX_PIECE_WORDS]))
    if carry:
        if pieces:
            pieces[-1] = f"{pieces[-1]} {carry}"
        else:
            pieces.append(carry)
    return pieces or [text.strip()]


def pooled_probabilities(
    probabilities: npt.NDArray[np.floating], sizes: npt.ArrayLike
) -> npt.NDArray[np.float64]:
    """The class probabilities of a long text from those of its pieces: their mean,
    weighted by each piece's length and by how polar it is (1 - p(neutral)), so that the
    descriptive sentences of a review ("I bought it for my trip.") neither outvote nor
    dilute the ones that judge. A text of neutral pieces only stays neutral: the pooled
    neutral probability is the plain length-weighted mean."""
    p = np.asarray(probabilities, dtype=np.float64)
    length = np.asarray(sizes, dtype=np.float64)
    plain = length / length.sum()
    polar = length * np.clip(1.0 - p[:, 1], 1e-6, None)
    polar /= polar.sum()
    polar_mass = float(plain @ (1.0 - p[:, 1]))
    # Among the polar mass, positive vs negative as the polar pieces say.
    judged = polar @ p[:, [0, 2]]
    judged /= max(float(judged.sum()), 1e-12)
    pooled: npt.NDArray[np.float64] = np.array(
        [polar_mass * judged[0], 1.0 - polar_mass, polar_mass * judged[1]]
    )
    return pooled


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
