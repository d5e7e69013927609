"""Sentiment of unrated reviews: the shipped head on the project's own labelled reviews and
neutral texts, the head's arithmetic, the fallback for other encoders, and (slow) the
fitting procedure on real labelled sentences with a site it never saw."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from interest_stream.encoders.base import Encoder
from interest_stream.encoders.hashing import HashingEncoder
from interest_stream.streams.core.sentiment import SentimentScorer, shipped_head
from interest_stream.streams.errors import ConfigurationError, SourceError
from interest_stream.streams.interest.sentiment import (
    SentimentHead,
    pooled_probabilities,
    text_pieces,
)
from interest_stream.streams.lab import sentiment as lab
from interest_stream.streams.lab.long_reviews import build_long_texts, measure_long_texts
from interest_stream.streams.lab.neutral_texts import NEUTRAL_TEXTS, neutral_split

LABELLED = Path(__file__).parents[1] / "data" / "sentiment_labelled.jsonl"


def _balanced_accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    return 0.5 * (np.mean(scores[labels == 1] > 0) + np.mean(scores[labels == -1] < 0))


def test_the_shipped_head_fits_the_shipped_encoder(onnx_encoder: Encoder):
    head = shipped_head()
    assert head.dim == 384 and head.model_prefix == "all-MiniLM-L6-v2"
    assert head.fits(onnx_encoder.model_id, onnx_encoder.dim)
    assert head.fits("all-MiniLM-L6-v2:int8:d90bd2e6cc98", 384)
    assert not head.fits("hashing-v1", 384) and not head.fits("all-MiniLM-L6-v2:fp32:x", 768)
    assert SentimentScorer(onnx_encoder).method == "head"


def test_labelled_reviews_are_told_apart_and_clear_ones_are_confident(onnx_encoder: Encoder):
    rows = [json.loads(line) for line in LABELLED.read_text().splitlines()]
    scores = SentimentScorer(onnx_encoder).score(onnx_encoder.encode([r["text"] for r in rows]))
    labels = np.array([r["label"] for r in rows])
    accuracy = _balanced_accuracy(scores, labels)
    print(f"balanced accuracy {accuracy:.3f} on {len(rows)} labelled reviews")
    assert len(rows) >= 40 and {-1, 1} == set(labels.tolist())
    assert accuracy >= 0.9
    assert np.all(np.abs(scores) <= 1.0)
    assert scores[0] > 0.5 and scores[20] < -0.5


def test_neutral_texts_weigh_about_nothing(onnx_encoder: Encoder):
    _, held_out = neutral_split()  # never fitted on
    scores = SentimentScorer(onnx_encoder).score(onnx_encoder.encode(held_out))
    print(f"neutral: mean {scores.mean():+.3f}, mean |s| {np.abs(scores).mean():.3f}")
    assert abs(scores.mean()) < 0.05 and np.abs(scores).mean() < 0.1
    assert np.mean(scores == 0.0) >= 0.6  # most fall inside the neutral band
    assert np.mean(scores < -0.3) <= 0.05  # a tag is not a complaint
    # The zero-shot anchors, for contrast, call about a quarter of them clearly negative.
    anchors = SentimentScorer(onnx_encoder, zero_shot=True).score(onnx_encoder.encode(held_out))
    assert np.mean(anchors < -0.3) > 0.15


def test_neutral_texts_are_the_projects_own_and_split_in_halves():
    fit, held = neutral_split()
    assert len(fit) + len(held) == sum(len(t) for t in NEUTRAL_TEXTS.values())
    assert not set(fit) & set(held) and len(held) >= 90


def test_head_arithmetic_band_and_range():
    # Class logits along the first axis: x[0] > 0 positive, < 0 negative.
    weights = np.zeros((3, 4))
    weights[0, 0], weights[2, 0] = -5.0, 5.0
    head = SentimentHead("toy", weights, np.zeros(3), neutral_band=0.2)
    vectors = np.array([[1.0, 0, 0, 0], [-1.0, 0, 0, 0], [0.01, 0, 0, 0], [0, 1.0, 0, 0]])
    scores = head.score(vectors)
    assert scores[0] > 0.9 and scores[1] < -0.9
    assert scores[2] == 0.0 and scores[3] == 0.0  # inside the band
    np.testing.assert_allclose(head.probabilities(vectors).sum(axis=1), 1.0)
    assert SentimentHead.from_dict(json.loads(json.dumps(head.as_dict()))).fits("toy:x:y", 4)


@pytest.mark.parametrize(
    "change",
    [
        {"format": "something else"},
        {"classes": ["neg", "pos"]},
        {"weights": [[0.0] * 4] * 2},
        {"bias": [0.0, float("nan"), 0.0]},
        {"neutral_band": 1.5},
    ],
)
def test_a_malformed_head_is_a_configuration_error(change: dict):
    good = SentimentHead("toy", np.zeros((3, 4)), np.zeros(3)).as_dict()
    with pytest.raises(ConfigurationError):
        SentimentHead.from_dict({**good, **change})


def test_other_encoders_fall_back_to_zero_shot_anchors():
    encoder = HashingEncoder()
    scorer = SentimentScorer(encoder)
    assert scorer.method == "anchors"
    scores = scorer.score(encoder.encode(["great", "awful"]))
    assert scores.shape == (2,) and np.all(np.abs(scores) <= 1.0)


def test_missing_data_is_one_clear_error(tmp_path: Path):
    with pytest.raises(SourceError, match=r"labelled sentences not found.*--data"):
        lab.read_sites(tmp_path)


def _real_data() -> Path:
    """The real labelled sentences: $INTEREST_STREAM_LAB_DATA or ../shared/data beside the
    repository. They are not in the repository (only read from where they are kept), so a
    checkout without them fails here, saying where to put them; deselect with -m 'not data'."""
    data = lab.default_data_dir()
    if not (data / lab.SENTENCES_DIR).is_dir():
        pytest.fail(
            f"real labelled sentences not found under {data}: set {lab.DATA_ENV} to the folder"
            f" holding {lab.SENTENCES_DIR}/, or deselect with -m 'not data'"
        )
    return data


@pytest.mark.slow
@pytest.mark.data
def test_a_head_fitted_on_two_sites_holds_on_the_third(onnx_encoder: Encoder):
    """The fitting procedure, measured where nothing was fitted: imdb (the hardest site)."""
    sites = {s.name: s for s in lab.read_sites(_real_data())}
    fit, held = [sites["amazon_cells"], sites["yelp"]], sites["imdb"]
    vectors = {s.name: onnx_encoder.encode(list(s.texts)).astype(np.float64) for s in fit}
    neutral_fit, neutral_held = neutral_split()
    neutral = onnx_encoder.encode(neutral_fit).astype(np.float64)
    head = lab.fit_head(*lab.training_set(fit, vectors, neutral), 3e-4, "all-MiniLM-L6-v2")
    held_vectors = onnx_encoder.encode(list(held.texts)).astype(np.float64)
    accuracy = lab.balanced_accuracy(lab.decision(head, held_vectors), held.labels)
    negatives = lab.negative_class_at(head.score(held_vectors), held.labels)
    print(f"imdb held out: balanced accuracy {accuracy:.3f}, negatives at 80/20 {negatives}")
    assert accuracy >= 0.80
    assert negatives["recall"] >= 0.8  # negatives are not drowned in a mostly positive stream
    assert np.abs(head.score(onnx_encoder.encode(neutral_held))).mean() < 0.1


@pytest.mark.slow
@pytest.mark.data
def test_long_reviews_are_read_sentence_by_sentence(onnx_encoder: Encoder):
    """Paragraphs of 4-9 held-out sentences of one label (each site held out in turn, the
    head fitted on the other two): scored piece by piece they reach the 0.85 balanced
    accuracy the issue asks for, counting a text scored neutral as wrong."""
    sites = {s.name: s for s in lab.read_sites(_real_data())}
    neutral_fit, _ = neutral_split()
    neutral = onnx_encoder.encode(neutral_fit).astype(np.float64)
    vectors = {
        name: onnx_encoder.encode(list(site.texts)).astype(np.float64)
        for name, site in sites.items()
    }
    for held in sites.values():
        fit = [s for s in sites.values() if s.name != held.name]
        head = lab.fit_head(*lab.training_set(fit, vectors, neutral), 3e-4, "all-MiniLM-L6-v2")
        long = build_long_texts(held.texts, held.labels, seed=1)
        figures = measure_long_texts(onnx_encoder, head, long)
        print(held.name, figures)
        assert figures["texts"] >= 150
        assert figures["per_piece"]["balanced_accuracy_strict"] >= 0.85
        assert (
            figures["per_piece"]["balanced_accuracy_strict"]
            >= figures["whole_text"]["balanced_accuracy_strict"]
        )


def test_long_texts_are_cut_into_sentences_and_pooled():
    assert text_pieces("Loved it.") == ["Loved it."]
    assert text_pieces('Great phone, light and fast. Wow! "It broke," he said.\nNever again.') == [
        "Great phone, light and fast.",
        'Wow! "It broke," he said. Never again.',  # short ones join a neighbour
    ]
    run_on = " ".join(["word"] * 300)
    assert [len(p.split()) for p in text_pieces(run_on)] == [120, 120, 60]
    # Judging pieces decide; neutral pieces neither outvote nor dilute them.
    probabilities = np.array([[0.05, 0.9, 0.05], [0.05, 0.9, 0.05], [0.05, 0.05, 0.9]])
    pooled = pooled_probabilities(probabilities, [30, 30, 30])
    assert pooled.sum() == pytest.approx(1.0)
    assert pooled[2] > pooled[0] and pooled[1] == pytest.approx(0.6167, abs=1e-3)
    only_neutral = pooled_probabilities(np.array([[0.1, 0.8, 0.1]] * 2), [10, 20])
    np.testing.assert_allclose(only_neutral, [0.1, 0.8, 0.1])


def test_score_texts_keeps_one_sentence_texts_and_encodes_the_pieces_of_long_ones():
    seen: list[str] = []

    class Counting(HashingEncoder):
        def encode(self, texts):  # type: ignore[no-untyped-def]
            seen.extend(texts)
            return super().encode(texts)

    scorer = SentimentScorer(Counting(), zero_shot=True)
    texts = [
        "Loved every minute of it.",
        "The plot was dull and painfully slow. The acting was awful from start to end.",
    ]
    vectors = HashingEncoder().encode(texts)
    scores = scorer.score_texts(texts, vectors)
    assert scores[0] == pytest.approx(scorer.score(vectors[:1])[0])
    assert {
        "The plot was dull and painfully slow.",
        "The acting was awful from start to end.",
    } <= set(seen)
    assert texts[0] not in seen and texts[1] not in seen  # their own vectors were given
