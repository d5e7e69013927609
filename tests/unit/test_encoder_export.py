"""Exported graphs against the torch reference: fp32 exact, int8 within its bar, idempotence."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from interest_stream.encoders.export import ParityError, export_encoder, reference_embeddings
from interest_stream.encoders.layout import PARITY_BARS, precision_dir, valid_export
from interest_stream.encoders.parity_sentences import PARITY_SENTENCES
from interest_stream.encoders.runtime import OnnxEncoder
from interest_stream.streams.errors import MissingExtraError
from interest_stream.streams.lab.corpus import bench_corpora

# Texts the parity gate did not see: the check must generalize beyond its own sentences.
UNSEEN = bench_corpora(60, seed=123)["mixed"]


@pytest.fixture(scope="session")
def reference() -> np.ndarray:
    return reference_embeddings([*PARITY_SENTENCES, *UNSEEN])


def _cosines(precision: str, reference: np.ndarray) -> np.ndarray:
    export_encoder(precision)  # idempotent: cached in the default model dir across runs
    directory = precision_dir(None, precision)
    meta = valid_export(directory)
    assert meta is not None
    encoder = OnnxEncoder.from_meta(directory, meta, device="cpu")
    vectors = encoder.encode([*PARITY_SENTENCES, *UNSEEN])
    return np.sum(vectors * reference, axis=1)


def test_fp32_matches_torch(reference: np.ndarray) -> None:
    cosines = _cosines("fp32", reference)
    assert cosines.min() >= 0.9999


def test_int8_meets_its_bar(reference: np.ndarray) -> None:
    cosines = _cosines("int8", reference)
    bar = PARITY_BARS["int8"]
    assert cosines.mean() >= bar.mean
    assert cosines.min() >= bar.min


def test_export_is_idempotent_and_records_its_parity() -> None:
    first = export_encoder("fp32")
    again = export_encoder("fp32")
    assert again.skipped
    assert again.model_id == first.model_id
    assert again.model_id.startswith("all-MiniLM-L6-v2:fp32:")
    meta = valid_export(precision_dir(None, "fp32"))
    assert meta is not None
    assert meta.meets_parity_bar
    assert meta.dim == 384
    assert meta.max_length == 256


def test_export_below_its_bar_saves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from interest_stream.encoders.layout import ParityBar

    monkeypatch.setitem(PARITY_BARS, "int8", ParityBar(mean=0.99999, min=0.99999))
    with pytest.raises(ParityError, match="nothing saved"):
        export_encoder("int8", model_dir=tmp_path)
    assert not (tmp_path / "int8").exists()
    assert [path.name for path in tmp_path.iterdir()] == []


def test_missing_torch_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes `import torch` raise ImportError, as if absent.
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'interest-stream\[export\]'"):
        export_encoder("fp32", model_dir=tmp_path)
