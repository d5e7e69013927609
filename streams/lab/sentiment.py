"""Fitting and measuring the sentiment head on real labelled review sentences.

Data: UCI "Sentiment Labelled Sentences" (Kotzias et al., 'From Group to Individual Labels
using Deep Features', KDD 2015; CC BY 4.0): 1,000 sentences from each of three sites, half
positive, half negative, and no neutral ones, so the project's own neutral texts
(`neutral_texts`) make up the third class. The data is read from where it is kept (never
copied into the repository); the fitted head, which ships, carries the attribution.

Measured the honest way: each site is held out in turn, the head is fitted on the other two
(its L2 strength chosen by leave-one-site-out *within* those two) plus the even half of the
neutral texts, and reported on the held-out site and on the odd half of the neutral texts:
balanced accuracy (the sites are balanced, real streams are not), the share of texts the
neutral band zeroes, and the negative class's precision and recall when resampled 80/20
positive/negative as real reviews are. The zero-shot anchors are measured on the same folds.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from interest_stream.encoders.base import Encoder
from interest_stream.streams.errors import SourceError
from interest_stream.streams.interest.sentiment import (
    NEGATIVE_ANCHORS,
    POSITIVE_ANCHORS,
    SentimentHead,
    anchor_sentiment,
)
from interest_stream.streams.lab.neutral_texts import neutral_split

SITES = ("amazon_cells", "imdb", "yelp")
SENTENCES_DIR = "sentiment-labelled-sentences"
DATA_ENV = "INTEREST_STREAM_LAB_DATA"
L2_GRID = (3e-5, 1e-4, 3e-4, 1e-3, 3e-3)
NEUTRAL_BAND = 0.1
ATTRIBUTION = (
    "Fitted on the UCI Sentiment Labelled Sentences (Kotzias et al., 'From Group to"
    " Individual Labels using Deep Features', KDD 2015; CC BY 4.0) and the project's own"
    " neutral texts (streams/lab/neutral_texts.py)."
)
Matrix = npt.NDArray[np.float64]
Labels = npt.NDArray[np.int64]


def default_data_dir() -> Path:
    """$INTEREST_STREAM_LAB_DATA, else ../shared/data beside the repository (or the cwd)."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV])
    repository = Path(__file__).resolve().parents[2]
    for base in (repository, Path.cwd()):
        candidate = base.parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return repository.parent / "shared" / "data"


@dataclass(frozen=True)
class LabelledSite:
    name: str
    texts: tuple[str, ...]
    labels: Labels  # 1 positive, 0 negative


def read_sites(data_dir: Path) -> list[LabelledSite]:
    """The three sites' sentences; a missing folder is one clear SourceError."""
    folder = data_dir / SENTENCES_DIR
    sites = []
    for site in SITES:
        path = folder / f"{site}_labelled.txt"
        if not path.is_file():
            raise SourceError(
                f"labelled sentences not found: {path} (pass --data DIR, the folder holding"
                f" {SENTENCES_DIR}/, or set {DATA_ENV})"
            )
        texts, labels = [], []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            text, _, label = line.rpartition("\t")
            if label.strip() not in {"0", "1"} or not text.strip():
                raise SourceError(f"{path}:{number}: expected 'sentence<TAB>0|1'")
            texts.append(text.strip())
            labels.append(int(label))
        sites.append(LabelledSite(site, tuple(texts), np.array(labels, dtype=np.int64)))
    return sites


def fit_head(
    vectors: Matrix,
    classes: Labels,
    l2: float,
    model_prefix: str,
    *,
    band: float = NEUTRAL_BAND,
    iterations: int = 50,
) -> SentimentHead:
    """Softmax regression (0 negative, 1 neutral, 2 positive) by Newton's method.

    Classes are weighted to equal total weight (few neutral texts, many polar ones); the
    negative class is the reference (its logits are 0), L2 on the weights, not the biases.
    """
    n, dim = vectors.shape
    x = np.hstack([vectors.astype(np.float64), np.ones((n, 1))])
    width = dim + 1
    counts = np.bincount(classes, minlength=3).astype(np.float64)
    if (counts == 0).any():
        raise ValueError("every class needs at least one example")
    sample = (n / (3 * counts))[classes]
    sample /= sample.sum()
    targets = np.eye(3)[classes][:, 1:]
    penalty = np.full(width, l2)
    penalty[-1] = 0.0
    w = np.zeros((width, 2))
    for _ in range(iterations):
        logits = np.hstack([np.zeros((n, 1)), x @ w])
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p = (p / p.sum(axis=1, keepdims=True))[:, 1:]
        gradient = x.T @ ((p - targets) * sample[:, None]) + penalty[:, None] * w
        hessian = np.empty((2 * width, 2 * width))
        for a in range(2):
            for b in range(2):
                curvature = sample * p[:, a] * (float(a == b) - p[:, b])
                block = (x * curvature[:, None]).T @ x
                hessian[a * width : (a + 1) * width, b * width : (b + 1) * width] = block
        hessian += np.diag(np.tile(penalty, 2)) + 1e-9 * np.eye(2 * width)
        step = np.linalg.solve(hessian, gradient.T.reshape(-1)).reshape(2, width).T
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    weights = np.vstack([np.zeros(dim), w[:-1].T])
    bias = np.concatenate([[0.0], w[-1]])
    return SentimentHead(model_prefix, weights, bias, band)


def balanced_accuracy(scores: Matrix, labels: Labels) -> float:
    """Mean of the recalls of both classes, deciding by the sign of the score (0: negative)."""
    positive = scores > 0
    return float(0.5 * (positive[labels == 1].mean() + (~positive[labels == 0]).mean()))


def decision(head: SentimentHead, vectors: Matrix) -> Matrix:
    """p(positive) - p(negative) before the neutral band: the side the head would take."""
    p = head.probabilities(vectors)
    margin: Matrix = p[:, 2] - p[:, 0]
    return margin


def negative_class_at(
    scores: Matrix, labels: Labels, positive_share: float = 0.8, draws: int = 200, seed: int = 0
) -> dict[str, float]:
    """Precision and recall of the negative class (score < 0) on resamples with
    `positive_share` positives, as in real review streams where most reviews are positive."""
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    size = len(labels)
    n_pos = round(positive_share * size)
    precision, recall = [], []
    for _ in range(draws):
        rows = np.concatenate([rng.choice(pos, n_pos), rng.choice(neg, size - n_pos)])
        called, truly = scores[rows] < 0, labels[rows] == 0
        hits = float((called & truly).sum())
        precision.append(hits / max(1.0, float(called.sum())))
        recall.append(hits / float(truly.sum()))
    return {"precision": float(np.mean(precision)), "recall": float(np.mean(recall))}


def training_set(
    sites: Sequence[LabelledSite], vectors: Mapping[str, Matrix], neutral: Matrix
) -> tuple[Matrix, Labels]:
    """Polar sentences of `sites` (0 negative, 2 positive) plus neutral texts (1)."""
    x = np.vstack([vectors[s.name] for s in sites] + [neutral])
    y = np.concatenate([np.where(s.labels == 1, 2, 0) for s in sites] + [np.ones(len(neutral))])
    return x, y.astype(np.int64)


def choose_l2(
    sites: Sequence[LabelledSite], vectors: Mapping[str, Matrix], neutral: Matrix, prefix: str
) -> float:
    """The L2 strength with the best mean balanced accuracy, leaving out each site in turn."""

    def quality(l2: float) -> float:
        accuracies = []
        for held in sites:
            rest = [s for s in sites if s.name != held.name]
            head = fit_head(*training_set(rest, vectors, neutral), l2, prefix)
            margin = decision(head, vectors[held.name])
            accuracies.append(balanced_accuracy(margin, held.labels))
        return float(np.mean(accuracies))

    return max(L2_GRID, key=lambda l2: (quality(l2), l2))


def _neutral_vectors(encoder: Encoder) -> tuple[Matrix, Matrix]:
    fit, held = neutral_split()
    return encoder.encode(fit).astype(np.float64), encoder.encode(held).astype(np.float64)


def _neutral_figures(scores: Matrix) -> dict[str, float]:
    return {
        "mean": float(scores.mean()),
        "mean_abs": float(np.abs(scores).mean()),
        "zero": float(np.mean(scores == 0)),
        "below_-0.3": float(np.mean(scores < -0.3)),
        "min": float(scores.min()),
        "max": float(scores.max()),
    }


def measure(
    sites: Sequence[LabelledSite], encoders: Sequence[Encoder], prefix: str
) -> dict[str, Any]:
    """Leave-one-site-out figures of the head, with the zero-shot anchors alongside.

    The head is fitted on vectors of the first encoder (the reference precision) and
    measured on every encoder's vectors of the held-out site.
    """
    reference = encoders[0]
    vectors: dict[str, dict[str, Matrix]] = {}
    neutral: dict[str, tuple[Matrix, Matrix]] = {}
    encode_seconds: dict[str, float] = {}
    for encoder in encoders:
        started = time.perf_counter()
        vectors[encoder.model_id] = {
            s.name: encoder.encode(list(s.texts)).astype(np.float64) for s in sites
        }
        encode_seconds[encoder.model_id] = time.perf_counter() - started
        neutral[encoder.model_id] = _neutral_vectors(encoder)
    ref = vectors[reference.model_id]
    neutral_fit = neutral[reference.model_id][0]
    folds = []
    neutral_scores: dict[str, list[Matrix]] = {e.model_id: [] for e in encoders}
    for held in sites:
        rest = [s for s in sites if s.name != held.name]
        l2 = choose_l2(rest, ref, neutral_fit, prefix)
        head = fit_head(*training_set(rest, ref, neutral_fit), l2, prefix)
        fold: dict[str, Any] = {"held_out": held.name, "fitted_on": [s.name for s in rest]}
        fold["l2"] = l2
        for encoder in encoders:
            held_vectors = vectors[encoder.model_id][held.name]
            scores = head.score(held_vectors)
            fold[encoder.model_id] = {
                "balanced_accuracy": balanced_accuracy(decision(head, held_vectors), held.labels),
                "zeroed_by_band": float(np.mean(scores == 0)),
                "mean_abs_score": float(np.abs(scores).mean()),
                # A text the band zeroes weighs nothing: it is called neither side here.
                "negative_at_80_20": negative_class_at(scores, held.labels),
            }
            neutral_scores[encoder.model_id].append(head.score(neutral[encoder.model_id][1]))
        anchors = _anchor_scores(reference, ref[held.name])
        fold["zero_shot"] = {
            "balanced_accuracy": balanced_accuracy(anchors, held.labels),
            "negative_at_80_20": negative_class_at(anchors, held.labels),
        }
        folds.append(fold)
    anchors_neutral = _anchor_scores(reference, neutral[reference.model_id][1])
    total_texts = sum(len(s.texts) for s in sites)
    return {
        "folds": folds,
        "neutral_held_out": {
            model_id: _neutral_figures(np.concatenate(scores))
            for model_id, scores in neutral_scores.items()
        },
        "neutral_zero_shot": _neutral_figures(anchors_neutral),
        "encode_texts_per_s": {
            model_id: total_texts / seconds for model_id, seconds in encode_seconds.items()
        },
    }


def _anchor_scores(encoder: Encoder, vectors: Matrix) -> Matrix:
    return anchor_sentiment(
        vectors, encoder.encode(POSITIVE_ANCHORS), encoder.encode(NEGATIVE_ANCHORS)
    )


def scoring_overhead(encoder: Encoder, texts: Sequence[str]) -> dict[str, Any]:
    """Encoding `texts` against encoding them and scoring every vector with a head of the
    encoder's size (the worst case: the product scores only unrated reviews), best of three
    runs each. The cost of the product does not depend on the weights' values."""
    head = SentimentHead("any", np.zeros((3, encoder.dim)), np.zeros(3), NEUTRAL_BAND)
    encode_times, score_times = [], []
    for _ in range(3):
        started = time.perf_counter()
        vectors = encoder.encode(list(texts))
        encode_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        head.score(vectors)
        score_times.append(time.perf_counter() - started)
    encode, score = min(encode_times), min(score_times)
    return {
        "texts": len(texts),
        "encode_s": encode,
        "score_s": score,
        "overhead": score / encode,
    }


def fit_shipped_head(
    sites: Sequence[LabelledSite], encoder: Encoder, prefix: str
) -> tuple[SentimentHead, dict[str, Any]]:
    """The head to ship: every site and every neutral text, L2 by leave-one-site-out."""
    vectors = {s.name: encoder.encode(list(s.texts)).astype(np.float64) for s in sites}
    fit, held = neutral_split()
    neutral = encoder.encode(fit + held).astype(np.float64)
    l2 = choose_l2(sites, vectors, neutral, prefix)
    head = fit_head(*training_set(sites, vectors, neutral), l2, prefix)
    about = {
        "attribution": ATTRIBUTION,
        "fitted_with": encoder.model_id,
        "fitted_on": {s.name: len(s.texts) for s in sites} | {"neutral": len(neutral)},
        "l2": l2,
        "command": (
            "interest-stream bench sentiment --write-head streams/interest/sentiment_head.json"
        ),
    }
    return head, about


def head_json(head: SentimentHead, about: Mapping[str, Any]) -> str:
    """The head file: provenance first, readable; one weight row per line."""
    data = head.as_dict(**about)
    rows = data.pop("weights")
    text = json.dumps(data, indent=1)
    body = ",\n  ".join(json.dumps(row) for row in rows)
    return f'{text[:-2]},\n "weights": [\n  {body}\n ]\n}}\n'


def _short(model_id: str) -> str:
    """'all-MiniLM-L6-v2:int8:d90bd2e6cc98' -> 'head on int8 vectors'."""
    parts = model_id.split(":")
    return f"head on {parts[1]} vectors" if len(parts) == 3 else model_id


def print_figures(figures: Mapping[str, Any], console: Any) -> None:
    """The figures as tables: one row per held-out site and precision, then neutral texts."""
    from rich import box
    from rich.table import Table

    table = Table(
        title="held-out site: balanced accuracy (sign of the score), share zeroed by the"
        " neutral band, negative class at 80/20 positive/negative",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    for column in ("held out", "encoder", "L2", "bal. acc", "zeroed", "neg P", "neg R"):
        table.add_column(column, justify="left" if column in ("held out", "encoder") else "right")
    for fold in figures["folds"]:
        for model_id, row in fold.items():
            if not isinstance(row, dict) or "balanced_accuracy" not in row:
                continue
            negative = row["negative_at_80_20"]
            table.add_row(
                fold["held_out"],
                "zero-shot anchors" if model_id == "zero_shot" else _short(model_id),
                "" if model_id == "zero_shot" else f"{fold['l2']:g}",
                f"{row['balanced_accuracy']:.3f}",
                f"{row['zeroed_by_band']:.1%}" if "zeroed_by_band" in row else "",
                f"{negative['precision']:.2f}",
                f"{negative['recall']:.2f}",
            )
    console.print(table)
    neutral = Table(
        title="neutral texts never fitted on (the odd half of each category): scores",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    for column in ("scorer", "mean", "mean |s|", "exactly 0", "below -0.3", "min", "max"):
        neutral.add_column(column, justify="left" if column == "scorer" else "right")
    rows = dict(figures["neutral_held_out"]) | {"zero-shot anchors": figures["neutral_zero_shot"]}
    for name, row in rows.items():
        neutral.add_row(
            _short(name),
            f"{row['mean']:+.3f}",
            f"{row['mean_abs']:.3f}",
            f"{row['zero']:.0%}",
            f"{row['below_-0.3']:.1%}",
            f"{row['min']:+.2f}",
            f"{row['max']:+.2f}",
        )
    console.print(neutral)
    for model_id, cost in figures["overhead"].items():
        console.print(
            f"{model_id}: encoding {cost['texts']:,} sentences {cost['encode_s']:.2f} s, scoring"
            f" them {1000 * cost['score_s']:.2f} ms: +{cost['overhead']:.2%}",
            highlight=False,
        )
    if "wrote_head" in figures:
        console.print(f"wrote {figures['wrote_head']}", highlight=False)
