"""The production encoder: an exported ONNX graph run by onnxruntime, tokenized by `tokenizers`.

This is what workers load, so it imports neither torch nor transformers. Encoding is split
into pre (tokenize in bulk, bucket by length, pad per batch: encoders/batching.py), core
(`session.run`; on CUDA through IOBinding when onnxruntime-gpu sees a GPU) and post (the
graph already mean-pools and L2-normalizes; rows are re-normalized defensively and put back
in the caller's order). encoders/pipeline.py overlaps pre with core, so the device is not
left waiting for the host.

On CPU a text's vector is bit-identical however it is batched (alone, with any batch-mates,
in any order), for fp32 and int8 alike: its padded width is a function of its own length,
the int8 graph has fixed activation scales, and the CPU kernels compute each row the same
way whatever the number of rows.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from tokenizers import Tokenizer

from interest_stream.encoders.base import Vectors
from interest_stream.encoders.batching import CPU_WIDTH_STEPS, GPU_WIDTH_STEPS, tokenize
from interest_stream.encoders.layout import (
    MAX_LENGTH,
    MODEL_FILE,
    TOKENIZER_FILE,
    ModelMeta,
    valid_export,
)
from interest_stream.encoders.onnx_install import onnxruntime_module
from interest_stream.encoders.pipeline import (
    BatchPolicy,
    BatchProducer,
    BufferPool,
    CallTally,
    PaddedBatch,
    run_batches,
)
from interest_stream.streams.errors import InterestStreamError

# Refuses, with the fix in one line, when neither onnxruntime nor onnxruntime-gpu is
# installed or both are (they overwrite each other's module): encoders/onnx_install.py.
ort = onnxruntime_module()

log = logging.getLogger(__name__)

CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"
DEVICES = ("auto", "cpu", "cuda")

# Measured on 2 cores, one batch per core: past 64 texts a CPU batch gains nothing, and
# batches of ~1k padded tokens keep the activations of the elementwise ops (LayerNorm, GELU,
# quantization: a third of the int8 time) in cache: long reviews ran 10-15% faster than
# with 4k-token batches, short texts the same. A GPU wants far larger batches to be busy;
# memory stays small (MiniLM, 256 tokens at most).
CPU_MAX_BATCH_TEXTS = 64
CPU_MAX_BATCH_TOKENS = 1024
GPU_MAX_BATCH_TEXTS = 1024
GPU_MAX_BATCH_TOKENS = 65536
# onnxruntime's own default for its default logger (WARNING); it has no getter.
ORT_DEFAULT_LOG_SEVERITY = 2


class EncoderDeviceError(InterestStreamError):
    """The requested device cannot be used (e.g. `cuda` without onnxruntime-gpu or a GPU)."""


@dataclass
class EncoderStats:
    """Running totals since the encoder was created, for metrics and benchmarks.

    `seconds` is wall time inside `encode`; `session_seconds` is time inside the model runs
    summed over the threads that run them; `run_slots_seconds` is `seconds` times those
    threads, so 1 - session_seconds / run_slots_seconds is the host-side share.
    """

    texts: int = 0
    batches: int = 0
    tokens: int = 0
    padded_tokens: int = 0
    truncations: int = 0
    seconds: float = 0.0
    session_seconds: float = 0.0
    run_slots_seconds: float = 0.0

    @property
    def host_share(self) -> float:
        """Share of the run threads' time not spent inside the model (0 when idle)."""
        if self.run_slots_seconds <= 0:
            return 0.0
        return max(0.0, 1.0 - self.session_seconds / self.run_slots_seconds)


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


@contextlib.contextmanager
def quiet_provider_probe(probing_cuda: bool) -> Iterator[None]:
    """Keep onnxruntime's default logger at ERROR while a CUDA session is created.

    onnxruntime-gpu 1.31+ logs "No registered plugin EP device found for
    'CUDAExecutionProvider'" through its default logger (not the session's, so
    `log_severity_level` does not reach it) even when CUDA works. Errors and fatal
    messages still print, and failures still raise. The default logger is then set back
    to onnxruntime's default severity (it has no getter to read a custom one from).
    """
    if not probing_cuda:
        yield
        return
    ort.set_default_logger_severity(3)
    try:
        yield
    finally:
        ort.set_default_logger_severity(ORT_DEFAULT_LOG_SEVERITY)


class OnnxEncoder:
    """Encoder protocol over an exported all-MiniLM-L6-v2 graph (see encoders/export.py).

    Thread-safe: onnxruntime sessions allow concurrent `run` calls, each call has its own
    pipeline, and the stats are updated under a lock.
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
        run_threads: int | None = None,
        io_binding: bool | None = None,
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
        pad_id = self._tokenizer.token_to_id("[PAD]")

        cores = available_cpus()
        # On CPU, whole batches run side by side, one core each: no barrier between the
        # cores inside every op, which on a shared 2-core machine measured faster and far
        # steadier than one run spread over both cores. A GPU gets one run at a time.
        if run_threads is None:
            run_threads = max(1, cores // intra_op_threads) if intra_op_threads else cores
        self._run_threads = run_threads
        self._intra_op_threads = intra_op_threads or max(1, cores // run_threads)
        self._session = self._create_session(model_path, device)
        self._on_gpu = self._session.get_providers()[0] == CUDA_PROVIDER
        if device == "cuda" and not self._on_gpu:
            raise EncoderDeviceError(
                "device='cuda' requested but onnxruntime could not use a GPU "
                f"(available providers: {ort.get_available_providers()})"
            )
        if self._on_gpu:
            self._run_threads = 1
        # IOBinding is the GPU path; it also runs on CPU, which is how tests exercise it.
        self._io_binding = self._on_gpu if io_binding is None else io_binding
        self._policy = BatchPolicy(
            max_texts=max_batch_texts
            or (GPU_MAX_BATCH_TEXTS if self._on_gpu else CPU_MAX_BATCH_TEXTS),
            max_tokens=max_tokens_per_batch
            or (GPU_MAX_BATCH_TOKENS if self._on_gpu else CPU_MAX_BATCH_TOKENS),
            width_steps=GPU_WIDTH_STEPS if self._on_gpu else CPU_WIDTH_STEPS,
        )
        self._producer = BatchProducer(
            self._tokenizer,
            max_length,
            self._policy,
            BufferPool(self._policy.max_tokens),
            pad_id=pad_id or 0,
        )
        self._input_names = {node.name for node in self._session.get_inputs()}
        self._output_name = self._session.get_outputs()[0].name
        self._lock = threading.Lock()
        self.stats = EncoderStats()
        log.info(
            "encoder %s on %s: %d run thread(s) x %d intra-op thread(s), batches <= %d texts"
            " / %d padded tokens, max_length %d",
            model_id,
            "GPU (CUDAExecutionProvider, IOBinding)" if self._on_gpu else "CPU",
            self._run_threads,
            self._intra_op_threads,
            self._policy.max_texts,
            self._policy.max_tokens,
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
        return cls(
            directory / MODEL_FILE,
            directory / TOKENIZER_FILE,
            model_id=meta.model_id,
            dim=meta.dim,
            max_length=meta.max_length,
            **options,
        )

    def _create_session(self, model_path: Path, device: str) -> Any:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = self._intra_op_threads
        # One graph at a time per run; parallelism lives inside the ops and across runs.
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # the session's own warnings about fallbacks
        providers: list[str | tuple[str, dict[str, Any]]] = [CPU_PROVIDER]
        probing_cuda = device in ("auto", "cuda") and cuda_available()
        if probing_cuda:
            providers = [(CUDA_PROVIDER, {"device_id": 0}), CPU_PROVIDER]
        # On CPU, Add + LayerNormalization runs about 4x faster than onnxruntime's fused
        # SkipLayerNormalization kernel (see encoders/export.py), so keep them apart; CUDA
        # has a fast fused kernel.
        disabled = [] if probing_cuda else ["SkipLayerNormFusion"]
        with quiet_provider_probe(probing_cuda):
            return ort.InferenceSession(
                str(model_path),
                sess_options=options,
                providers=providers,
                disabled_optimizers=disabled,
            )

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

    @property
    def session(self) -> Any:
        """The onnxruntime session (benchmarks time bare `run` calls on it)."""
        return self._session

    @property
    def policy(self) -> BatchPolicy:
        return self._policy

    @property
    def run_threads(self) -> int:
        """Batches run side by side (one per core on CPU, one on a GPU)."""
        return self._run_threads

    def count_tokens(self, texts: Sequence[str]) -> int:
        """Tokens the model would see for `texts` (after truncation, with [CLS]/[SEP])."""
        return int(tokenize(self._tokenizer, texts, self._max_length).lengths.sum())

    def padded_batches(self, texts: Sequence[str]) -> list[PaddedBatch]:
        """The batches `encode` would run for `texts`, padded (copies, for benchmarks)."""
        batches = []
        for batch in self._producer.batches(texts, CallTally()):
            batches.append(
                PaddedBatch(
                    batch.rows.copy(),
                    batch.input_ids.copy(),
                    batch.attention_mask.copy(),
                    batch.buffer,
                )
            )
            self._producer.release(batch)
        return batches

    def feeds(self, batch: PaddedBatch) -> dict[str, npt.NDArray[np.int64]]:
        """The session inputs for one padded batch."""
        feeds = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.zeros_like(batch.input_ids)
        return feeds

    def encode(self, texts: Sequence[str]) -> Vectors:
        started = time.perf_counter()
        count = len(texts)
        vectors = np.empty((count, self._dim), dtype=np.float32)
        if count == 0:
            return vectors
        tally = CallTally()
        batches = self._producer.batches(texts, tally)
        # The first chunk is tokenized here; a call that makes one batch runs on this
        # thread alone, since threads would only add their start-up to it.
        ahead = list(itertools.islice(batches, 2))
        pipelined = len(ahead) > 1
        run_threads = self._run_threads if pipelined else 1
        run_batches(
            itertools.chain(ahead, batches),
            self._run_bound if self._io_binding else self._run_plain,
            vectors,
            consumers=run_threads,
            queue_depth=self._policy.queue_depth,
            release=self._producer.release,
            tally=tally,
            pipelined=pipelined,
        )
        _normalize_rows(vectors)
        seconds = time.perf_counter() - started
        with self._lock:
            self.stats.texts += tally.texts
            self.stats.batches += tally.batches
            self.stats.tokens += tally.tokens
            self.stats.padded_tokens += tally.padded_tokens
            self.stats.truncations += tally.truncations
            self.stats.session_seconds += tally.session_seconds
            self.stats.seconds += seconds
            self.stats.run_slots_seconds += seconds * run_threads
        return vectors

    def _run_plain(self, batch: PaddedBatch) -> npt.NDArray[np.float32]:
        output = self._session.run([self._output_name], self.feeds(batch))[0]
        return np.asarray(output, dtype=np.float32)

    def _run_bound(self, batch: PaddedBatch) -> npt.NDArray[np.float32]:
        # Inputs are copied from the pooled host arrays into device memory that the CUDA
        # arena hands out again on the next run; the output is written into a device
        # buffer ORT also takes from its arena, and copied back once per batch.
        binding = self._session.io_binding()
        for name, array in self.feeds(batch).items():
            binding.bind_cpu_input(name, array)
        binding.bind_output(self._output_name, self.device, 0)
        self._session.run_with_iobinding(binding)
        return np.asarray(binding.copy_outputs_to_cpu()[0], dtype=np.float32)


def _normalize_rows(vectors: npt.NDArray[np.float32]) -> None:
    """Unit rows in place: the graph normalizes already, this guards fp16/int8 rounding."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    np.maximum(norms, 1e-12, out=norms)
    vectors /= norms
