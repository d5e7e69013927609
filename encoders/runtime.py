"""The production encoder: an exported ONNX graph run by onnxruntime, tokenized by `tokenizers`.

This is what workers load, so it imports neither torch nor transformers. Encoding is split
into pre (tokenize without padding, sort by length, cut into batches bounded by texts and
by padded tokens, pad each batch only to its own longest text), core (`session.run`, on
CUDA through IOBinding when onnxruntime-gpu sees a GPU, else on CPU) and post (the graph
already mean-pools and L2-normalizes; rows are re-normalized defensively and put back in
the caller's order).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from tokenizers import Encoding, Tokenizer

from interest_stream.encoders.base import Vectors
from interest_stream.encoders.layout import (
    MAX_LENGTH,
    MODEL_FILE,
    PER_TEXT_PRECISIONS,
    TOKENIZER_FILE,
    ModelMeta,
    valid_export,
)
from interest_stream.streams.errors import InterestStreamError

log = logging.getLogger(__name__)

CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"
DEVICES = ("auto", "cpu", "cuda")

# Measured on 2 AMD EPYC cores (see encoders/bench.py): past ~64 texts or ~4k padded tokens a
# CPU batch gains nothing and attention's cost grows with the square of its length. A GPU
# wants far larger batches to be busy; memory stays small (MiniLM, 256 tokens max).
CPU_MAX_BATCH_TEXTS = 64
CPU_MAX_BATCH_TOKENS = 4096
GPU_MAX_BATCH_TEXTS = 512
GPU_MAX_BATCH_TOKENS = 65536


class EncoderDeviceError(InterestStreamError):
    """The requested device cannot be used (e.g. `cuda` without onnxruntime-gpu or a GPU)."""


@dataclass
class EncoderStats:
    """Running totals since the encoder was created, for metrics and benchmarks."""

    texts: int = 0
    batches: int = 0
    tokens: int = 0
    padded_tokens: int = 0
    truncations: int = 0
    seconds: float = 0.0


def available_cpus() -> int:
    """Cores this process may run on (cgroup/taskset aware), not the machine's total."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def cuda_available() -> bool:
    """True when onnxruntime was built with the CUDA provider (onnxruntime-gpu).

    Whether a GPU is actually visible is only known once a session is created: ORT then
    silently falls back to CPU, which `OnnxEncoder` detects from `session.get_providers()`.
    """
    return CUDA_PROVIDER in ort.get_available_providers()


def plan_batches(lengths: Sequence[int], max_texts: int, max_tokens: int) -> list[tuple[int, int]]:
    """Cut texts already sorted by ascending token length into [start, end) batches.

    A batch costs (texts x its longest length) after padding; it grows until adding the
    next text would pass either cap. A single text longer than `max_tokens` still forms a
    batch of its own.
    """
    if max_texts < 1 or max_tokens < 1:
        raise ValueError("batch caps must be positive")
    batches: list[tuple[int, int]] = []
    start = 0
    for index, length in enumerate(lengths):
        count = index - start
        if count and (count + 1 > max_texts or (count + 1) * length > max_tokens):
            batches.append((start, index))
            start = index
    if start < len(lengths):
        batches.append((start, len(lengths)))
    return batches


class OnnxEncoder:
    """Encoder protocol over an exported all-MiniLM-L6-v2 graph (see encoders/export.py).

    Thread-safe: onnxruntime sessions allow concurrent `run` calls and the stats are
    updated under a lock.
    """

    def __init__(
        self,
        model_path: Path,
        tokenizer_path: Path,
        *,
        model_id: str,
        dim: int,
        max_length: int = MAX_LENGTH,
        device: str = "auto",
        max_batch_texts: int | None = None,
        max_tokens_per_batch: int | None = None,
        intra_op_threads: int | None = None,
        per_text: bool = False,
    ) -> None:
        if device not in DEVICES:
            raise EncoderDeviceError(f"device must be one of {DEVICES}, got {device!r}")
        self._model_id = model_id
        self._dim = dim
        self._max_length = max_length
        self._tokenizer = Tokenizer.from_file(str(tokenizer_path))
        # The shipped tokenizer.json pads everything to 128 and truncates at 128; we pad per
        # batch ourselves and truncate where sentence-transformers does.
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length)

        self._threads = intra_op_threads or available_cpus()
        self._session = self._create_session(model_path, device, per_text)
        self._on_gpu = self._session.get_providers()[0] == CUDA_PROVIDER
        # Single-text runs exist for dynamically quantized graphs, whose activation scale is
        # taken over the whole batch; on a GPU only the batch-invariant fp16/fp32 are used.
        self._per_text = per_text and not self._on_gpu
        self._workers = (
            ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix="onnx-encoder")
            if self._per_text and self._threads > 1
            else None
        )
        if device == "cuda" and not self._on_gpu:
            raise EncoderDeviceError(
                "device='cuda' requested but onnxruntime could not use a GPU "
                f"(available providers: {ort.get_available_providers()})"
            )
        self._max_batch_texts = max_batch_texts or (
            GPU_MAX_BATCH_TEXTS if self._on_gpu else CPU_MAX_BATCH_TEXTS
        )
        self._max_batch_tokens = max_tokens_per_batch or (
            GPU_MAX_BATCH_TOKENS if self._on_gpu else CPU_MAX_BATCH_TOKENS
        )
        self._input_names = {node.name for node in self._session.get_inputs()}
        self._output_name = self._session.get_outputs()[0].name
        # Output buffers on the GPU, one per batch size seen: reused across calls so the
        # steady state allocates nothing on the device. Bounded by max_batch_texts entries.
        self._gpu_outputs: dict[int, ort.OrtValue] = {}
        # Shared output buffers make GPU runs exclusive; the device serializes them anyway.
        self._gpu_lock = threading.Lock()
        self._lock = threading.Lock()
        self.stats = EncoderStats()
        if self._on_gpu:
            how = "CUDAExecutionProvider + IOBinding"
        elif self._per_text:
            how = f"CPUExecutionProvider, one text per run on {self._threads} threads"
        else:
            how = f"CPUExecutionProvider, {self._threads} intra-op threads"
        log.info(
            "encoder %s on %s (%s), batches <= %d texts / %d tokens, max_length %d",
            model_id,
            "GPU" if self._on_gpu else "CPU",
            how,
            1 if self._per_text else self._max_batch_texts,
            self._max_batch_tokens,
            max_length,
        )

    @classmethod
    def from_dir(cls, directory: Path, **options: Any) -> OnnxEncoder:
        """Load the export in `directory`, checking meta.json against the model's hash."""
        meta = valid_export(directory)
        if meta is None:
            raise InterestStreamError(f"no valid encoder export in {directory}")
        return cls.from_meta(directory, meta, **options)

    @classmethod
    def from_meta(cls, directory: Path, meta: ModelMeta, **options: Any) -> OnnxEncoder:
        options.setdefault("per_text", meta.precision in PER_TEXT_PRECISIONS)
        return cls(
            directory / MODEL_FILE,
            directory / TOKENIZER_FILE,
            model_id=meta.model_id,
            dim=meta.dim,
            max_length=meta.max_length,
            **options,
        )

    def _create_session(
        self, model_path: Path, device: str, per_text: bool
    ) -> ort.InferenceSession:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Single-text runs are too small to split across cores; they run side by side on
        # our own worker threads instead, one core each.
        options.intra_op_num_threads = 1 if per_text else self._threads
        # One graph at a time per call; parallelism lives inside the ops.
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # keep ORT's own warnings about fallbacks off stderr
        providers: list[str | tuple[str, dict[str, Any]]] = [CPU_PROVIDER]
        if device in ("auto", "cuda") and cuda_available():
            providers = [(CUDA_PROVIDER, {"device_id": 0}), CPU_PROVIDER]
        return ort.InferenceSession(str(model_path), sess_options=options, providers=providers)

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def device(self) -> str:
        return "cuda" if self._on_gpu else "cpu"

    @property
    def max_length(self) -> int:
        return self._max_length

    def count_tokens(self, texts: Sequence[str]) -> int:
        """Tokens the model would see for `texts` (after truncation, with [CLS]/[SEP])."""
        return sum(len(encoding.ids) for encoding in self._tokenizer.encode_batch(list(texts)))

    def encode(self, texts: Sequence[str]) -> Vectors:
        started = time.perf_counter()
        count = len(texts)
        if count == 0:
            return np.zeros((0, self._dim), dtype=np.float32)

        encodings = self._tokenizer.encode_batch(list(texts))
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=count)
        order = np.argsort(lengths, kind="stable")
        sorted_lengths = lengths[order]
        # Rows are written in length order and put back in the caller's order at the end.
        in_length_order = np.empty((count, self._dim), dtype=np.float32)
        if self._per_text:
            batches = [(row, row + 1) for row in range(count)]
            padded_tokens = int(lengths.sum())
            self._run_singly([encodings[i] for i in order], in_length_order)
        else:
            batches = plan_batches(
                sorted_lengths.tolist(), self._max_batch_texts, self._max_batch_tokens
            )
            padded_tokens = 0
            for start, end in batches:
                batch = [encodings[i] for i in order[start:end]]
                width = int(sorted_lengths[end - 1])
                padded_tokens += width * (end - start)
                in_length_order[start:end] = self._run(*_pad(batch, width))

        vectors = np.empty_like(in_length_order)
        vectors[order] = in_length_order
        _normalize_rows(vectors)

        truncations = sum(1 for e in encodings if e.overflowing)
        with self._lock:
            self.stats.texts += count
            self.stats.batches += len(batches)
            self.stats.tokens += int(lengths.sum())
            self.stats.padded_tokens += padded_tokens
            self.stats.truncations += truncations
            self.stats.seconds += time.perf_counter() - started
        return vectors

    def _run_singly(self, encodings: Sequence[Encoding], out: npt.NDArray[np.float32]) -> None:
        """Encode each text in a run of its own, `threads` runs at a time (GIL released)."""

        def work(rows: range) -> None:
            for row in rows:
                input_ids = np.array([encodings[row].ids], dtype=np.int64)
                out[row] = self._run(input_ids, np.ones_like(input_ids))[0]

        if self._workers is None:
            work(range(len(encodings)))
            return
        # Interleaved shares give every worker a similar mix of short and long texts.
        shares = [range(k, len(encodings), self._threads) for k in range(self._threads)]
        for finished in [self._workers.submit(work, share) for share in shares]:
            finished.result()

    def _run(
        self, input_ids: npt.NDArray[np.int64], attention_mask: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float32]:
        feeds = {"input_ids": input_ids, "attention_mask": attention_mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.zeros_like(input_ids)
        if self._on_gpu:
            return self._run_cuda(feeds)
        output = self._session.run([self._output_name], feeds)[0]
        return np.asarray(output, dtype=np.float32)

    def _run_cuda(self, feeds: dict[str, npt.NDArray[np.int64]]) -> npt.NDArray[np.float32]:
        with self._gpu_lock:
            return self._run_cuda_locked(feeds)

    def _run_cuda_locked(self, feeds: dict[str, npt.NDArray[np.int64]]) -> npt.NDArray[np.float32]:
        rows = feeds["input_ids"].shape[0]
        binding = self._session.io_binding()
        for name, array in feeds.items():
            binding.bind_cpu_input(name, array)
        output = self._gpu_outputs.get(rows)
        if output is None:
            output = ort.OrtValue.ortvalue_from_shape_and_type(
                [rows, self._dim], np.float32, "cuda", 0
            )
            self._gpu_outputs[rows] = output
        binding.bind_ortvalue_output(self._output_name, output)
        self._session.run_with_iobinding(binding)
        return np.asarray(binding.copy_outputs_to_cpu()[0], dtype=np.float32)


def _pad(
    batch: Sequence[Encoding], width: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Right-pad token ids with 0 ([PAD]) to `width`; the mask marks the real tokens."""
    input_ids = np.zeros((len(batch), width), dtype=np.int64)
    attention_mask = np.zeros((len(batch), width), dtype=np.int64)
    for row, encoding in enumerate(batch):
        length = len(encoding.ids)
        input_ids[row, :length] = encoding.ids
        attention_mask[row, :length] = 1
    return input_ids, attention_mask


def _normalize_rows(vectors: npt.NDArray[np.float32]) -> None:
    """Unit rows in place: the graph normalizes already, this guards fp16/int8 rounding."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    np.maximum(norms, 1e-12, out=norms)
    vectors /= norms
