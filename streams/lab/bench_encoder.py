"""Side-by-side encoder benchmark behind `interest-stream bench encoder`.

Per device, like against like: on CPU, sentence-transformers (torch fp32, the same
weights, batch size and thread count) against our fp32 and int8 encoders; on a GPU (when
onnxruntime-gpu sees one), sentence-transformers in fp16 on the GPU at its best batch size
against our fp16 (and fp32) encoders on the GPU. The fp32 torch run on CPU is the parity
reference for every row.

Each ONNX engine is also measured against its own ceiling: a bare `session.run` loop over
the very batches the encoder would run, tokenized and padded beforehand (same threads).
`vs raw` is encoder / raw throughput, and `host share` is the part of the encoder's run
threads' time not spent inside `session.run` (tokenizing, padding, waiting, copying).
Engines are warmed up, then timed `repeats` times in turn and their fastest pass kept, so a
busy neighbour skews every engine alike. Results are plain JSON-able dicts.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from interest_stream.encoders.layout import precision_dir, valid_export
from interest_stream.encoders.pipeline import PaddedBatch
from interest_stream.encoders.runtime import OnnxEncoder, available_cpus, cuda_available
from interest_stream.streams.lab.corpus import bench_corpora

log = logging.getLogger(__name__)

BenchRow = dict[str, Any]
Progress = Callable[[str], None]
Encode = Callable[[list[str]], npt.NDArray[np.float32]]
BASELINE = "torch"  # sentence-transformers, the same weights
WARMUP_TEXTS = 64
GPU_BASELINE_BATCHES = (128, 256, 512, 1024)


@dataclass
class _Engine:
    label: str
    device: str
    precision: str
    encode: Encode
    batch_size: int
    onnx: OnnxEncoder | None = None
    raw: Callable[[list[PaddedBatch]], None] | None = None


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
    """Rows of texts/s, ratios and parity per corpus and engine (see the module docstring).

    `texts` sizes the mixed and short corpora; the long one (40-80 word reviews) gets a
    quarter of it. fp16 runs only on a GPU; int8 only on CPU. Missing exports are produced
    first when `export_missing` (the benchmark needs torch for its baseline anyway).
    """
    say = progress or (lambda _message: None)
    threads = available_cpus()
    engines = _cpu_engines(precisions, model_dir, export_missing, batch_size, threads, say)
    gpu_note = _gpu_engines(engines, precisions, model_dir, export_missing, say)
    sizes = {"mixed": texts, "short": texts, "long": max(8, texts // 4)}
    generated = {name: bench_corpora(size, seed)[name] for name, size in sizes.items()}
    rows: list[BenchRow] = []
    for corpus in corpora:
        sample = generated[corpus]
        say(f"{corpus}: {len(sample)} texts, {repeats} timed passes per engine")
        rows.extend(_bench_corpus(corpus, sample, engines, repeats, threads))
    if gpu_note:
        rows.append({"corpus": "*", "label": "GPU rows", "device": "cuda", "skipped": gpu_note})
    return rows


def _bench_corpus(
    corpus: str, sample: list[str], engines: list[_Engine], repeats: int, threads: int
) -> list[BenchRow]:
    batches = {e.label: e.onnx.padded_batches(sample) for e in engines if e.onnx is not None}
    for engine in engines:
        engine.encode(sample[:WARMUP_TEXTS])
        if engine.raw is not None:
            engine.raw(batches[engine.label][:2])
    best: dict[str, float] = {}
    best_raw: dict[str, float] = {}
    host_share: dict[str, float] = {}
    vectors: dict[str, npt.NDArray[np.float32]] = {}
    for _ in range(repeats):
        for engine in engines:
            before = _stats(engine)
            started = time.perf_counter()
            vectors[engine.label] = engine.encode(sample)
            elapsed = time.perf_counter() - started
            if elapsed < best.get(engine.label, float("inf")):
                best[engine.label] = elapsed
                host_share[engine.label] = _host_share(before, _stats(engine))
            if engine.raw is not None:
                started = time.perf_counter()
                engine.raw(batches[engine.label])
                elapsed = time.perf_counter() - started
                best_raw[engine.label] = min(best_raw.get(engine.label, elapsed), elapsed)

    reference = vectors[_baseline_label("cpu")]
    rate = {label: len(sample) / seconds for label, seconds in best.items()}
    rows = []
    for engine in engines:
        baseline = _baseline_label(engine.device)
        cosines = np.sum(vectors[engine.label] * reference, axis=1)
        row: BenchRow = {
            "corpus": corpus,
            "label": engine.label,
            "engine": "torch" if engine.onnx is None else "onnx",
            "precision": engine.precision,
            "device": engine.device,
            "model_id": "" if engine.onnx is None else engine.onnx.model_id,
            "texts": len(sample),
            "texts_per_s": round(rate[engine.label], 1),
            "ratio": round(rate[engine.label] / rate[baseline], 2),
            "baseline": baseline,
            "parity_mean": round(float(cosines.mean()), 5),
            "parity_min": round(float(cosines.min()), 5),
            "threads": threads,
            "batch_size": engine.batch_size,
            "skipped": "",
        }
        if engine.onnx is not None:
            raw_rate = len(sample) / best_raw[engine.label]
            row.update(
                mean_tokens=round(engine.onnx.count_tokens(sample) / max(1, len(sample)), 1),
                raw_texts_per_s=round(raw_rate, 1),
                vs_raw=round(rate[engine.label] / raw_rate, 2),
                host_share=round(host_share[engine.label], 3),
                run_threads=engine.onnx.run_threads,
            )
        rows.append(row)
    return rows


def _baseline_label(device: str) -> str:
    return f"{BASELINE} {'fp16' if device == 'cuda' else 'fp32'} {device}"


def _stats(engine: _Engine) -> tuple[float, float]:
    if engine.onnx is None:
        return (0.0, 0.0)
    return (engine.onnx.stats.session_seconds, engine.onnx.stats.run_slots_seconds)


def _host_share(before: tuple[float, float], after: tuple[float, float]) -> float:
    slots = after[1] - before[1]
    return max(0.0, 1.0 - (after[0] - before[0]) / slots) if slots > 0 else 0.0


def _cpu_engines(
    precisions: Sequence[str],
    model_dir: Path | None,
    export_missing: bool,
    batch_size: int,
    threads: int,
    say: Progress,
) -> list[_Engine]:
    torch_cpu = _torch_encoder("cpu", threads, batch_size)
    engines = [_Engine(_baseline_label("cpu"), "cpu", "fp32", torch_cpu, batch_size)]
    for precision in [p for p in precisions if p in ("fp32", "int8")]:
        encoder = _load(precision, model_dir, export_missing, "cpu", batch_size, say)
        engines.append(_onnx_engine(encoder, precision))
    return engines


def _gpu_engines(
    engines: list[_Engine],
    precisions: Sequence[str],
    model_dir: Path | None,
    export_missing: bool,
    say: Progress,
) -> str:
    """Append the GPU engines when a GPU is usable; otherwise say why there are none."""
    wanted = [p for p in precisions if p in ("fp16", "fp32")]
    if not wanted or "fp16" not in precisions:
        return ""
    if not cuda_available():
        return "no GPU: onnxruntime has no CUDAExecutionProvider"
    onnx_engines = []
    for precision in wanted:
        encoder = _load(precision, model_dir, export_missing, "cuda", 0, say)
        if encoder.device != "cuda":
            return "no GPU visible to onnxruntime"
        onnx_engines.append(_onnx_engine(encoder, precision))
    batch, encode = _best_torch_gpu_batch(say)
    engines.append(_Engine(_baseline_label("cuda"), "cuda", "fp16", encode, batch))
    engines.extend(onnx_engines)
    return ""


def _onnx_engine(encoder: OnnxEncoder, precision: str) -> _Engine:
    session, output = encoder.session, encoder.session.get_outputs()[0].name
    pool = ThreadPoolExecutor(encoder.run_threads) if encoder.run_threads > 1 else None

    def raw(batches: list[PaddedBatch]) -> None:
        # The encoder's own threads and batches, with every bit of host work done already.
        if pool is None:
            for batch in batches:
                session.run([output], encoder.feeds(batch))
        else:
            list(pool.map(lambda batch: session.run([output], encoder.feeds(batch)), batches))

    return _Engine(
        f"onnx {precision} {encoder.device}",
        encoder.device,
        precision,
        encoder.encode,
        encoder.policy.max_texts,
        onnx=encoder,
        raw=raw,
    )


def _load(
    precision: str,
    model_dir: Path | None,
    export_missing: bool,
    device: str,
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
    options: dict[str, Any] = {"device": device}
    if batch_size:
        options["max_batch_texts"] = batch_size
    return OnnxEncoder.from_meta(directory, meta, **options)


def _sentence_transformer(device: str) -> Any:
    from interest_stream.encoders.export import import_optional, source_model_dir

    os.environ["HF_HUB_OFFLINE"] = "1"
    sentence_transformers = import_optional("sentence_transformers", "bench")
    return sentence_transformers.SentenceTransformer(str(source_model_dir()), device=device)


def _torch_encoder(device: str, threads: int, batch_size: int, half: bool = False) -> Encode:
    """sentence-transformers on `device` (CPU: the thread count onnxruntime uses)."""
    from interest_stream.encoders.export import import_optional

    torch = import_optional("torch", "bench")
    if device == "cpu":
        torch.set_num_threads(threads)
    model = _sentence_transformer(device)
    if half:
        model = model.half()

    def encode(texts: list[str]) -> npt.NDArray[np.float32]:
        with torch.inference_mode():
            vectors = model.encode(
                texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True
            )
        return np.asarray(vectors, dtype=np.float32)

    return encode


def _best_torch_gpu_batch(say: Progress) -> tuple[int, Encode]:
    """sentence-transformers fp16 on the GPU at the batch size it runs fastest."""
    probe = bench_corpora(4096, seed=11)["mixed"]
    best: tuple[float, int, Encode] | None = None
    for batch in GPU_BASELINE_BATCHES:
        encode = _torch_encoder("cuda", 0, batch, half=True)
        encode(probe[:batch])
        started = time.perf_counter()
        encode(probe)
        seconds = time.perf_counter() - started
        if best is None or seconds < best[0]:
            best = (seconds, batch, encode)
    assert best is not None
    say(f"sentence-transformers fp16 on cuda: best batch size {best[1]}")
    return best[1], best[2]


def summary(rows: Sequence[BenchRow]) -> list[str]:
    """The lines the issue asks for: ratios against torch and against the raw loop."""
    lines = []
    for row in rows:
        if row.get("skipped") or row["engine"] != "onnx":
            continue
        lines.append(
            f"{row['corpus']}: {row['label']} {row['ratio']:.2f}x {row['baseline']},"
            f" {row['vs_raw']:.2f}x raw session.run loop, host-side share"
            f" {row['host_share']:.0%}, cosine mean {row['parity_mean']:.4f}"
            f" / min {row['parity_min']:.4f}"
        )
    return lines


def print_table(rows: Sequence[BenchRow], console: Any | None = None) -> None:
    """Render `bench_encoder` rows as one rich table, grouped by corpus, and the summary."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    title = "encoders vs sentence-transformers (torch) on the same device; cosine to torch fp32"
    table = Table(title=title)
    columns = ("corpus", "engine", "batch", "texts/s", "vs torch", "vs raw", "host", "cos mean")
    for column in (*columns, "cos min"):
        table.add_column(column, justify="left" if column in ("corpus", "engine") else "right")
    previous = None
    for row in rows:
        if row.get("skipped"):
            continue
        corpus = row["corpus"] if row["corpus"] != previous else ""
        if row["corpus"] != previous and previous is not None:
            table.add_section()
        previous = row["corpus"]
        onnx = row["engine"] == "onnx"
        table.add_row(
            corpus,
            row["label"],
            str(row["batch_size"]),
            f"{row['texts_per_s']:.0f}",
            f"{row['ratio']:.2f}x",
            f"{row['vs_raw']:.2f}x" if onnx else "",
            f"{row['host_share']:.0%}" if onnx else "",
            f"{row['parity_mean']:.4f}",
            f"{row['parity_min']:.4f}",
        )
    console.print(table)
    for row in rows:
        if row.get("skipped"):
            console.print(f"{row['label']} skipped: {row['skipped']}", highlight=False)
    for line in summary(rows):
        console.print(line, highlight=False)
