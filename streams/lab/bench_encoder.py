"""Side-by-side encoder benchmark behind `interest-stream bench encoder`.

sentence-transformers (torch fp32, the same weights, the same batch size and as many
threads as onnxruntime gets) is the 1.0x baseline and the parity reference; our ONNX
encoders run fp32 and int8 on CPU and fp16 on a GPU when one is visible. Each engine is
warmed up, then timed `repeats` times in turn on the same texts and its fastest pass kept,
so a busy neighbour on the machine skews every engine alike instead of one. Results are
plain dicts (JSON-able) so CI can archive them; `print_table` renders them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from interest_stream.encoders.layout import precision_dir, valid_export
from interest_stream.encoders.runtime import OnnxEncoder, available_cpus, cuda_available
from interest_stream.streams.lab.corpus import bench_corpora

log = logging.getLogger(__name__)

BenchRow = dict[str, Any]
Progress = Callable[[str], None]
BASELINE = "sentence-transformers"
WARMUP_TEXTS = 64


def bench_encoder(
    texts: int = 1000,
    batch_size: int = 64,
    precisions: Sequence[str] = ("fp32", "int8", "fp16"),
    corpora: Sequence[str] = ("mixed", "short", "long"),
    repeats: int = 3,
    model_dir: Path | None = None,
    export_missing: bool = True,
    seed: int = 7,
    progress: Progress | None = None,
) -> list[BenchRow]:
    """Texts/s, speed-up over sentence-transformers and cosine parity, per corpus and engine.

    `texts` is the size of each corpus (mixed, short, long; see encoders/corpus.py).

    fp16 runs only on a GPU (CUDA provider and device visible); elsewhere its row says why
    it was skipped. Missing exports are produced first when `export_missing` (the benchmark
    needs torch for its baseline anyway).
    """
    say = progress or (lambda _message: None)
    threads = available_cpus()
    on_gpu = cuda_available()
    encoders: dict[str, OnnxEncoder] = {}
    skipped: dict[str, str] = {}
    for precision in precisions:
        if precision == "fp16" and not on_gpu:
            skipped[precision] = "no GPU"
            continue
        encoder = _load(precision, model_dir, export_missing, batch_size, say)
        if precision == "fp16" and encoder.device != "cuda":
            skipped[precision] = "no GPU visible to onnxruntime"
            continue
        encoders[precision] = encoder

    baseline = _baseline(threads, batch_size)
    corpus_texts = bench_corpora(texts, seed)
    rows: list[BenchRow] = []
    for corpus in corpora:
        sample = corpus_texts[corpus]
        say(f"{corpus}: {len(sample)} texts, {repeats} timed passes per engine")
        engines: dict[str, Callable[[list[str]], npt.NDArray[np.float32]]] = {BASELINE: baseline}
        engines.update({precision: enc.encode for precision, enc in encoders.items()})
        for encode in engines.values():
            encode(sample[:WARMUP_TEXTS])
        best = {name: float("inf") for name in engines}
        vectors: dict[str, npt.NDArray[np.float32]] = {}
        for _ in range(repeats):
            for name, encode in engines.items():
                started = time.perf_counter()
                vectors[name] = encode(sample)
                best[name] = min(best[name], time.perf_counter() - started)

        reference = vectors[BASELINE]
        base_rate = len(sample) / best[BASELINE]
        for name in engines:
            cosines = np.sum(vectors[name] * reference, axis=1)
            onnx_encoder = encoders.get(name)
            rows.append(
                {
                    "corpus": corpus,
                    "engine": "torch" if onnx_encoder is None else "onnx",
                    "precision": "fp32" if onnx_encoder is None else name,
                    "label": BASELINE if onnx_encoder is None else f"onnx {name}",
                    "device": "cpu" if onnx_encoder is None else onnx_encoder.device,
                    "model_id": "" if onnx_encoder is None else onnx_encoder.model_id,
                    "texts": len(sample),
                    "mean_tokens": _mean_tokens(encoders, sample),
                    "texts_per_s": round(len(sample) / best[name], 1),
                    "ratio": round(len(sample) / best[name] / base_rate, 2),
                    "parity_mean": round(float(cosines.mean()), 5),
                    "parity_min": round(float(cosines.min()), 5),
                    "threads": threads,
                    "batch_size": batch_size,
                    "skipped": "",
                }
            )
        for precision, reason in skipped.items():
            rows.append(
                {
                    "corpus": corpus,
                    "engine": "onnx",
                    "precision": precision,
                    "label": f"onnx {precision}",
                    "device": "cuda",
                    "model_id": "",
                    "texts": len(sample),
                    "skipped": reason,
                }
            )
    return rows


def print_table(rows: Sequence[BenchRow], console: Any | None = None) -> None:
    """Render `bench_encoder` rows as one rich table on `console`, grouped by corpus."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="encoder throughput (best of timed passes) and cosine to torch")
    for column in ("corpus", "engine", "device", "texts/s", "vs torch", "cos mean", "cos min"):
        table.add_column(column, justify="left" if column in ("corpus", "engine") else "right")
    previous = None
    for row in rows:
        corpus = row["corpus"] if row["corpus"] != previous else ""
        if row["corpus"] != previous and previous is not None:
            table.add_section()
        previous = row["corpus"]
        if row.get("skipped"):
            skipped = f"[dim]skipped: {row['skipped']}"
            table.add_row(corpus, row["label"], row["device"], "-", "-", "-", skipped)
            continue
        table.add_row(
            corpus,
            row["label"],
            row["device"],
            f"{row['texts_per_s']:.0f}",
            f"{row['ratio']:.2f}x",
            f"{row['parity_mean']:.5f}",
            f"{row['parity_min']:.5f}",
        )
    (console or Console()).print(table)


def _load(
    precision: str,
    model_dir: Path | None,
    export_missing: bool,
    batch_size: int,
    say: Progress,
) -> OnnxEncoder:
    directory = precision_dir(model_dir, precision)
    meta = valid_export(directory)
    if meta is None:
        if not export_missing:
            from interest_stream.encoders import EncoderNotExportedError

            raise EncoderNotExportedError(precision, directory)
        from interest_stream.encoders.export import export_encoder

        export_encoder(precision, model_dir=model_dir, progress=say)
        meta = valid_export(directory)
        assert meta is not None, "export_encoder returned without a valid export"
    device = "cuda" if precision == "fp16" else "cpu"
    return OnnxEncoder.from_meta(directory, meta, device=device, max_batch_texts=batch_size)


def _baseline(threads: int, batch_size: int) -> Callable[[list[str]], npt.NDArray[np.float32]]:
    """sentence-transformers on CPU with the thread count onnxruntime uses."""
    import os

    from interest_stream.encoders.export import import_optional, source_model_dir

    os.environ["HF_HUB_OFFLINE"] = "1"
    torch = import_optional("torch", "bench")
    sentence_transformers = import_optional("sentence_transformers", "bench")
    torch.set_num_threads(threads)
    model = sentence_transformers.SentenceTransformer(str(source_model_dir()), device="cpu")

    def encode(texts: list[str]) -> npt.NDArray[np.float32]:
        with torch.inference_mode():
            vectors = model.encode(
                texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True
            )
        return np.asarray(vectors, dtype=np.float32)

    return encode


def _mean_tokens(encoders: dict[str, OnnxEncoder], texts: list[str]) -> float:
    for encoder in encoders.values():
        return round(encoder.count_tokens(texts) / max(1, len(texts)), 1)
    return 0.0
