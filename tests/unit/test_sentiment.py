"""Zero-shot review sentiment with the real encoder, measured on a labelled set."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from interest_stream.encoders.base import Encoder
from interest_stream.streams.core.sentiment import SentimentScorer

LABELLED = Path(__file__).parents[1] / "data" / "sentiment_labelled.jsonl"


def test_sentiment_accuracy_on_the_labelled_set(onnx_encoder: Encoder):
    rows = [json.loads(line) for line in LABELLED.read_text().splitlines()]
    scores = SentimentScorer(onnx_encoder).score(onnx_encoder.encode([r["text"] for r in rows]))
    labels = np.array([r["label"] for r in rows])
    accuracy = float(np.mean(np.sign(scores) == labels))
    print(f"sentiment accuracy {accuracy:.3f} on {len(rows)} labelled reviews")
    assert len(rows) >= 40 and {-1, 1} == set(labels.tolist())
    assert accuracy >= 0.85
    # Scores stay in -1..1 and clear cases are confident.
    assert np.all(np.abs(scores) <= 1.0)
    assert scores[0] > 0.3 and scores[20] < -0.3
