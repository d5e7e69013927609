"""Text to vector: pick and load the exported encoder a process should use.

`load_encoder` chooses a precision (fp16 on a GPU, int8 on CPU when its export met its
parity bar, fp32 otherwise), loads the ONNX runtime encoder and wraps it in an LRU cache.
Importing this package stays light: no torch, no transformers, and onnxruntime only once
`load_encoder` is called.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from interest_stream.encoders.base import Encoder, Vectors
from interest_stream.encoders.layout import (
    PRECISIONS,
    default_model_dir,
    precision_dir,
    valid_export,
)
from interest_stream.streams.errors import ConfigurationError, InterestStreamError

if TYPE_CHECKING:
    from interest_stream.encoders.cache import CachedEncoder
    from interest_stream.encoders.runtime import OnnxEncoder

__all__ = [
    "Encoder",
    "EncoderNotExportedError",
    "Vectors",
    "default_model_dir",
    "load_encoder",
    "resolve_precision",
]


class EncoderNotExportedError(InterestStreamError):
    """The requested precision has no valid export in the model directory."""

    def __init__(self, precision: str, directory: Path) -> None:
        super().__init__(
            f"no valid {precision} encoder export in {directory}; run "
            f"`interest-stream export-encoder --precision {precision}` (needs the export "
            "extra: pip install 'interest-stream[export]')"
        )
        self.precision = precision
        self.directory = directory


def resolve_precision(precision: str, model_dir: Path | None, on_gpu: bool) -> str:
    """The concrete precision a requested one stands for on this machine.

    Args:
        precision: `auto`, `fp32`, `int8` or `fp16`.
        model_dir: Where the exports are; None for the default directory.
        on_gpu: Whether the encoder may run on a GPU.

    Returns:
        `precision` itself unless it is `auto`: then `fp16` on a GPU, else `int8` if its
        export met its parity bar, else `fp32`.

    Raises:
        ConfigurationError: `precision` is none of these.
    """
    if precision != "auto":
        if precision not in PRECISIONS:
            raise ConfigurationError(
                f"encoder precision must be auto or one of {PRECISIONS}, got {precision!r}"
            )
        return precision
    if on_gpu:
        return "fp16"
    # int8 only when its own export proved it close enough to torch; otherwise the exact
    # fp32 graph is the safe default.
    int8 = valid_export(precision_dir(model_dir, "int8"), verify_hash=False)
    if int8 is not None and int8.meets_parity_bar:
        return "int8"
    return "fp32"


def load_encoder(
    precision: str = "auto",
    model_dir: Path | None = None,
    cache_size: int = 100_000,
    device: str = "auto",
    *,
    reserve_cache: bool = False,
) -> CachedEncoder[OnnxEncoder]:
    """Load the exported encoder behind an LRU cache.

    Args:
        precision: `auto` (see `resolve_precision`), `fp32`, `int8` or `fp16`.
        model_dir: Where the exports are; None for `~/.cache/interest-stream/models`.
        cache_size: Vectors the LRU keeps (0: none).
        device: `auto`, `cpu` or `cuda`.
        reserve_cache: Make the whole cache resident now (a long-running process: its
            memory then does not climb as the cache fills).

    Returns:
        The cached encoder: `model_id`, `dim` and `device` like the bare encoder; its
        `inner` is the `OnnxEncoder` (with its `stats`).

    Raises:
        EncoderNotExportedError: The export is missing; the message names the command.
    """
    from interest_stream.encoders.cache import CachedEncoder
    from interest_stream.encoders.runtime import cuda_available

    # onnxruntime-gpu can be installed where no GPU is visible; whether the session really
    # landed on CUDA is only known once it exists, so the fp16 choice is rechecked below.
    maybe_gpu = device == "cuda" or (device == "auto" and cuda_available())
    chosen = resolve_precision(precision, model_dir, maybe_gpu)
    fp16_dir = precision_dir(model_dir, "fp16")
    if chosen == "fp16" and precision == "auto" and valid_export(fp16_dir, False) is None:
        # A GPU machine with only the CPU exports still runs; fp32 is exact on CUDA.
        chosen = "fp32"
    encoder = _open(chosen, model_dir, device)
    if precision == "auto" and chosen == "fp16" and encoder.device != "cuda":
        encoder = _open(resolve_precision("auto", model_dir, on_gpu=False), model_dir, "cpu")
    return CachedEncoder(encoder, capacity=cache_size, reserve=reserve_cache)


def _open(precision: str, model_dir: Path | None, device: str) -> OnnxEncoder:
    from interest_stream.encoders.runtime import OnnxEncoder

    directory = precision_dir(model_dir, precision)
    meta = valid_export(directory)
    if meta is None:
        raise EncoderNotExportedError(precision, directory)
    return OnnxEncoder.from_meta(directory, meta, device=device)
