"""The ONNX runtime encoder and its cache: torch-free import, batch invariance, order,
truncation, stats, and the quiet CUDA probe."""

from __future__ import annotations

import os
import random
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
from interest_stream.encoders.runtime import OnnxEncoder, quiet_provider_probe

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


INVARIANCE_TEXTS = [
    "cheap flights",
    LONG_TEXT,
    "the plot drags in the middle",
    "4K TV",
    "a",
    "Kestrel wireless noise-cancelling headphones - Black (2-Pack)",
    "Returned it because it is much smaller than the pictures suggest, and the app keeps"
    " disconnecting from my phone every few minutes.",
    *[f"{word} {k} review of the season finale" for k, word in enumerate("abcdefghij")],
    *[" ".join(["word"] * n) for n in (3, 7, 11, 15, 31, 33, 63, 65, 127)],
]


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_vectors_are_bit_identical_however_texts_are_batched(
    precision: str, fp32_export: tuple[Path, ModelMeta], int8_export: tuple[Path, ModelMeta]
) -> None:
    directory, meta = fp32_export if precision == "fp32" else int8_export
    encoder = OnnxEncoder.from_meta(directory, meta, device="cpu")
    texts = INVARIANCE_TEXTS
    alone = np.stack([encoder.encode([text])[0] for text in texts])
    together = encoder.encode(texts)
    order = list(range(len(texts)))
    random.Random(7).shuffle(order)
    shuffled = encoder.encode([texts[i] for i in order])
    unshuffled = np.empty_like(shuffled)
    unshuffled[order] = shuffled
    in_threes = np.concatenate([encoder.encode(texts[i : i + 3]) for i in range(0, len(texts), 3)])
    mixed = encoder.encode([*texts[::-1], *texts])[len(texts) :]  # duplicates, other mates
    for batched in (together, unshuffled, in_threes, mixed):
        assert np.array_equal(batched, alone)
    # Other batch caps and thread layouts change batch composition, not the vectors.
    layouts = ({"max_batch_texts": 2}, {"run_threads": 1, "intra_op_threads": 2})
    # io_binding: the GPU's run path (IOBinding), here bound to CPU memory.
    for options in (*layouts, {"io_binding": True, "run_threads": 1}):
        other = OnnxEncoder.from_meta(directory, meta, device="cpu", **options)
        assert np.array_equal(other.encode(texts), alone)


def test_stats_count_session_time_and_host_share(fp32_export: tuple[Path, ModelMeta]) -> None:
    directory, meta = fp32_export
    encoder = OnnxEncoder.from_meta(directory, meta, device="cpu", max_batch_texts=4)
    encoder.encode(INVARIANCE_TEXTS)
    stats = encoder.stats
    assert stats.texts == len(INVARIANCE_TEXTS)
    assert stats.batches >= len(INVARIANCE_TEXTS) // 4
    assert 0 < stats.session_seconds <= stats.run_slots_seconds
    assert 0.0 <= stats.host_share < 1.0
    assert stats.padded_tokens >= stats.tokens


def test_loaded_encoder_reports_device_and_model_id(
    fp32_export: tuple[Path, ModelMeta],
) -> None:
    directory, meta = fp32_export
    encoder = load_encoder("fp32", model_dir=directory.parent, device="cpu", cache_size=10)
    assert encoder.device == "cpu"
    assert encoder.model_id == meta.model_id == encoder.inner.model_id
    assert encoder.inner.stats.texts == 0


def test_cuda_probe_silences_only_the_default_logger_and_restores_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import onnxruntime as ort

    levels: list[int] = []
    monkeypatch.setattr(ort, "set_default_logger_severity", levels.append)
    with quiet_provider_probe(probing_cuda=False):
        pass
    assert levels == []
    seen_inside: list[int] = []

    def create_session() -> None:
        with quiet_provider_probe(probing_cuda=True):
            seen_inside.extend(levels)
            raise RuntimeError("no such model")

    with pytest.raises(RuntimeError, match="no such model"):  # failures still raise
        create_session()
    assert seen_inside == [3]  # errors (3) and fatal messages (4) still print
    assert levels == [3, 2]  # back to onnxruntime's default, WARNING


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


def test_cache_reports_the_device_of_what_it_wraps() -> None:
    assert CachedEncoder(CountingEncoder(), capacity=1).device == "cpu"


def test_auto_precision_falls_back_to_fp32_without_int8(tmp_path: Path) -> None:
    assert resolve_precision("auto", tmp_path, on_gpu=False) == "fp32"
    assert resolve_precision("auto", tmp_path, on_gpu=True) == "fp16"
    assert resolve_precision("int8", tmp_path, on_gpu=True) == "int8"
