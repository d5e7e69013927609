"""Sentiment of paragraph-length reviews, measured where the truth is known: long texts
built from held-out labelled sentences that all carry one label, scored as one vector (how
every text was scored before) and piece by piece (`SentimentScorer.score_texts`).

Two balanced accuracies are reported: "strict" counts a text the neutral band zeroes as
wrong whatever its label; "lenient" decides by the sign alone, a zero counting as
negative (the convention of the real-review figure in the issue that asked for this).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from interest_stream.encoders.base import Encoder
from interest_stream.streams.core.sentiment import SentimentScorer
from interest_stream.streams.interest.sentiment import SentimentHead

Labels = npt.NDArray[np.int64]


@dataclass(frozen=True)
class LongTexts:
    texts: tuple[str, ...]
    labels: Labels  # 1 positive, 0 negative


def build_long_texts(
    sentences: Sequence[str],
    labels: Labels,
    *,
    per_text: tuple[int, int] = (4, 9),
    seed: int = 0,
) -> LongTexts:
    """Paragraphs of `per_text` sentences (inclusive range) of one label each: every
    sentence used once, in a seeded random order."""
    rng = np.random.default_rng(seed)
    texts: list[str] = []
    out_labels: list[int] = []
    for label in (0, 1):
        pool = [sentences[i] for i in rng.permutation(np.flatnonzero(labels == label))]
        while len(pool) >= per_text[0]:
            size = int(rng.integers(per_text[0], per_text[1] + 1))
            chunk, pool = pool[:size], pool[size:]
            texts.append(" ".join(s if s[-1] in ".!?" else f"{s}." for s in chunk))
            out_labels.append(label)
    return LongTexts(tuple(texts), np.array(out_labels, dtype=np.int64))


def _accuracies(scores: npt.NDArray[np.float64], labels: Labels) -> dict[str, float]:
    pos, neg = labels == 1, labels == 0
    strict = 0.5 * (float((scores[pos] > 0).mean()) + float((scores[neg] < 0).mean()))
    lenient = 0.5 * (float((scores[pos] > 0).mean()) + float((scores[neg] <= 0).mean()))
    return {
        "balanced_accuracy_strict": strict,
        "balanced_accuracy_lenient": lenient,
        "zeroed": float((scores == 0).mean()),
    }


def measure_long_texts(encoder: Encoder, head: SentimentHead, long: LongTexts) -> dict[str, Any]:
    """Whole-text vector vs piece-by-piece scoring of the same long texts."""
    scorer = SentimentScorer(encoder, head=head)
    vectors = np.asarray(encoder.encode(list(long.texts)), dtype=np.float64)
    whole = scorer.score(vectors)
    pieces = scorer.score_texts(long.texts, vectors)
    return {
        "texts": len(long.texts),
        "mean_chars": float(np.mean([len(t) for t in long.texts])),
        "whole_text": _accuracies(whole, long.labels),
        "per_piece": _accuracies(pieces, long.labels),
    }
