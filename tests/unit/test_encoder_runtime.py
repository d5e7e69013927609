"""The ONNX runtime encoder and its cache: torch-free import, batching, order, truncation."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import unicodedata
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from interest_stream.encoders import EncoderNotExportedError, load_encoder, resolve_precision
from interest_stream.encoders.base import Encoder, Vectors
from interest_stream.encoders.cache import CachedEncoder
from interest_stream.encoders.layout import ModelMeta, precision_dir, valid_export
from interest_stream.encoders.runtime import OnnxEncoder, plan_batches

REPO = Path(__file__).resolve().parents[2]
LONG_TEXT = "The battery barely lasts a day and the app keeps disconnecting. " * 60


def _exported(precision: str) -> tuple[Path, ModelMeta]:
    """Export once into the default cache dir (idempotent: a no-op when already there)."""
    from interest_stream.encoders.export import export_encoder

    export_encoder(precision)
    directory = precision_dir(None, precision)
    meta = valid_export(directory)
    assert meta is not None
    return directory, meta


@pytest.fixture(scope="session")
def fp32_export() -> tuple[Path, ModelMeta]:
    return _exported("fp32")


@pytest.fixture(scope="session")
def int8_export() -> tuple[Path, ModelMeta]:
    return _exported("int8")


@pytest.fixture(scope="session")
def fp32(fp32_export: tuple[Path, ModelMeta]) -> OnnxEncoder:
    directory, meta = fp32_export
    return OnnxEncoder.from_meta(directory, meta, device="cpu")


def _cos(a: Vectors, b: Vectors) -> np.ndarray:
    return np.sum(a * b, axis=-1)


def test_runtime_never_imports_torch_or_transformers(
    fp32_export: tuple[Path, ModelMeta],
) -> None:
    directory, _ = fp32_export
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from interest_stream.encoders import load_encoder
        from interest_stream.encoders.runtime import OnnxEncoder
        OnnxEncoder.from_dir(Path({str(directory)!r})).encode(["hello", "world"])
        load_encoder("fp32", model_dir=Path({str(directory.parent)!r})).encode(["again"])
        heavy = {{"torch", "transformers", "sentence_transformers"}} & set(sys.modules)
        assert not heavy, heavy
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_rows_are_unit_float32_vectors(fp32: OnnxEncoder) -> None:
    vectors = fp32.encode(["wireless headphones", "", "a long review " * 20])
    assert vectors.shape == (3, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert fp32.encode([]).shape == (0, 384)
    assert isinstance(fp32, Encoder)


def test_padding_does_not_change_a_short_text(fp32: OnnxEncoder) -> None:
    alone = fp32.encode(["cheap flights"])[0]
    batched = fp32.encode([LONG_TEXT, "cheap flights", LONG_TEXT[:300]])[1]
    assert _cos(alone, batched) > 0.9999


def test_caller_order_is_restored(fp32: OnnxEncoder) -> None:
    texts = [LONG_TEXT, "b", "a medium length title of a book", "zz top", LONG_TEXT[:200]]
    together = fp32.encode(texts)
    one_by_one = np.stack([fp32.encode([text])[0] for text in texts])
    assert np.all(_cos(together, one_by_one) > 0.9999)
    reversed_rows = fp32.encode(texts[::-1])
    assert np.all(_cos(reversed_rows[::-1], together) > 0.9999)


def test_truncation_and_batches_are_counted(fp32_export: tuple[Path, ModelMeta]) -> None:
    directory, meta = fp32_export
    encoder = OnnxEncoder.from_meta(directory, meta, device="cpu", max_batch_texts=2)
    encoder.encode(["short", LONG_TEXT, "also short", LONG_TEXT + " different end"])
    assert encoder.stats.texts == 4
    assert encoder.stats.truncations == 2
    assert encoder.stats.batches == 2
    assert encoder.stats.tokens <= 2 * meta.max_length + 20
    assert encoder.stats.padded_tokens >= encoder.stats.tokens


def test_int8_vector_does_not_depend_on_its_batch(
    int8_export: tuple[Path, ModelMeta],
) -> None:
    directory, meta = int8_export
    encoder = OnnxEncoder.from_meta(directory, meta, device="cpu")
    texts = ["cheap flights", LONG_TEXT, "the plot drags in the middle", "4K TV"]
    together = encoder.encode(texts)
    alone = np.stack([encoder.encode([text])[0] for text in texts])
    np.testing.assert_allclose(together, alone, atol=1e-6)


@pytest.mark.parametrize(
    ("lengths", "max_texts", "max_tokens", "expected"),
    [
        ([], 4, 100, []),
        ([3, 3, 3, 3, 3], 2, 100, [(0, 2), (2, 4), (4, 5)]),
        ([2, 5, 10, 30], 10, 40, [(0, 3), (3, 4)]),
        ([500], 8, 100, [(0, 1)]),
    ],
)
def test_plan_batches_respects_both_caps(
    lengths: list[int], max_texts: int, max_tokens: int, expected: list[tuple[int, int]]
) -> None:
    assert plan_batches(lengths, max_texts, max_tokens) == expected


class CountingEncoder:
    """A fake inner encoder recording what it was asked to encode."""

    model_id = "fake:1"
    dim = 4

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def encode(self, texts: Sequence[str]) -> Vectors:
        self.calls.append(list(texts))
        rows = [[len(text), 1.0, 0.0, 0.0] for text in texts]
        vectors = np.asarray(rows, dtype=np.float32).reshape(-1, self.dim)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_cache_hits_dedups_and_normalizes_keys() -> None:
    inner = CountingEncoder()
    cache = CachedEncoder(inner, capacity=10)
    composed, decomposed = "café", unicodedata.normalize("NFD", "café")
    first = cache.encode(["a", "bb", "a", composed])
    assert inner.calls == [["a", "bb", composed]]
    second = cache.encode([f"  {decomposed} ", "bb", "new"])
    assert inner.calls[-1] == ["new"]
    np.testing.assert_array_equal(second[0], first[3])
    assert (cache.hits, cache.misses) == (3, 4)
    assert cache.hit_rate == pytest.approx(3 / 7)
    assert isinstance(cache, Encoder)
    assert cache.model_id == inner.model_id


def test_cache_evicts_least_recently_used() -> None:
    inner = CountingEncoder()
    cache = CachedEncoder(inner, capacity=2)
    cache.encode(["a", "bb"])
    cache.encode(["a"])  # "a" is now the most recent
    cache.encode(["ccc"])  # evicts "bb"
    cache.encode(["a", "bb"])
    assert inner.calls[-1] == ["bb"]
    assert len(cache) == 2


def test_cache_over_real_encoder_returns_the_same_vectors(fp32: OnnxEncoder) -> None:
    cache = CachedEncoder(fp32, capacity=100)
    texts = ["wireless headphones", "cheap flights", "wireless headphones"]
    cold = cache.encode(texts)
    warm = cache.encode(texts)
    np.testing.assert_array_equal(cold, warm)
    np.testing.assert_allclose(cold, fp32.encode(texts), atol=1e-6)
    assert cache.hits == 4


def test_missing_export_names_the_command(tmp_path: Path) -> None:
    with pytest.raises(EncoderNotExportedError, match="export-encoder --precision int8"):
        load_encoder("int8", model_dir=tmp_path, device="cpu")


def test_auto_precision_falls_back_to_fp32_without_int8(tmp_path: Path) -> None:
    assert resolve_precision("auto", tmp_path, on_gpu=False) == "fp32"
    assert resolve_precision("auto", tmp_path, on_gpu=True) == "fp16"
    assert resolve_precision("int8", tmp_path, on_gpu=True) == "int8"
