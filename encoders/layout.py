"""Where exported encoder models live on disk and what their `meta.json` promises.

Export writes `<model_dir>/<precision>/{model.onnx, tokenizer.json, meta.json}`; the runtime
and `load_encoder` only read. Keeping the layout, the parity bars and the meta format in one
dependency-free module lets both sides agree without the runtime importing the exporter.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

MODEL_NAME = "all-MiniLM-L6-v2"
EMBEDDING_DIM = 384
# sentence-transformers truncates this model at 256 tokens (sentence_bert_config.json);
# matching it keeps our vectors comparable with the reference for long reviews.
MAX_LENGTH = 256
PRECISIONS = ("fp32", "int8", "fp16")
MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
META_FILE = "meta.json"
# 2: pooling is a MatMul and int8 is static (batch-invariant graphs). Exports of format 1
# (dynamic int8, which is only exact one text per run) are refused, so they get re-exported.
META_FORMAT = 2
MODEL_DIR_ENV = "INTEREST_STREAM_MODEL_DIR"


@dataclass(frozen=True)
class ParityBar:
    """Least cosine to the torch fp32 reference an export must reach before it is saved."""

    mean: float
    min: float

    def met_by(self, mean: float, minimum: float) -> bool:
        return mean >= self.mean and minimum >= self.min


# fp32 must be the same function as torch; static int8 (per-channel weights, SmoothQuant,
# calibrated activation ranges) measured mean 0.997 / min 0.990 on the parity sentences
# (per-tensor weights gave 0.96, too lossy for profiles); fp16 loses only mantissa bits,
# so it is held close to fp32.
PARITY_BARS: dict[str, ParityBar] = {
    "fp32": ParityBar(mean=0.9999, min=0.9999),
    "int8": ParityBar(mean=0.99, min=0.97),
    "fp16": ParityBar(mean=0.999, min=0.995),
}


def default_model_dir() -> Path:
    """`$INTEREST_STREAM_MODEL_DIR`, else `$XDG_CACHE_HOME/interest-stream/models`.

    Read when called, never at import time, so tests and services can point it elsewhere.
    """
    override = os.environ.get(MODEL_DIR_ENV)
    if override:
        return Path(override).expanduser()
    cache_home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache_home).expanduser() / "interest-stream" / "models"


def precision_dir(model_dir: Path | None, precision: str) -> Path:
    return (model_dir if model_dir is not None else default_model_dir()) / precision


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def make_model_id(precision: str, model_sha256: str) -> str:
    return f"{MODEL_NAME}:{precision}:{model_sha256[:12]}"


@dataclass(frozen=True)
class ModelMeta:
    """Contents of `meta.json`: identity of the exported graph and the parity it reached."""

    model_id: str
    precision: str
    dim: int
    max_length: int
    model_sha256: str
    parity_mean: float
    parity_min: float
    parity_bar_mean: float
    parity_bar_min: float
    parity_sentences: int
    exported_at: str
    exporter: dict[str, str]
    format: int = META_FORMAT

    @property
    def meets_parity_bar(self) -> bool:
        return self.parity_mean >= self.parity_bar_mean and self.parity_min >= self.parity_bar_min

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ModelMeta:
        return cls(
            model_id=str(raw["model_id"]),
            precision=str(raw["precision"]),
            dim=int(raw["dim"]),
            max_length=int(raw["max_length"]),
            model_sha256=str(raw["model_sha256"]),
            parity_mean=float(raw["parity_mean"]),
            parity_min=float(raw["parity_min"]),
            parity_bar_mean=float(raw["parity_bar_mean"]),
            parity_bar_min=float(raw["parity_bar_min"]),
            parity_sentences=int(raw["parity_sentences"]),
            exported_at=str(raw["exported_at"]),
            exporter={str(k): str(v) for k, v in dict(raw.get("exporter", {})).items()},
            format=int(raw.get("format", 0)),
        )


def read_meta(directory: Path) -> ModelMeta | None:
    """The meta of an export in `directory`, or None when it is missing or unreadable."""
    try:
        raw = json.loads((directory / META_FILE).read_text(encoding="utf-8"))
        return ModelMeta.from_dict(raw)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def valid_export(directory: Path, verify_hash: bool = True) -> ModelMeta | None:
    """The meta when `directory` holds a complete export consistent with it, else None.

    Hashing the model (90 MB for fp32) takes ~0.1 s; callers that load at start-up accept
    that so a half-copied or swapped file is never served under the wrong model_id.
    """
    meta = read_meta(directory)
    if meta is None or meta.format != META_FORMAT:
        return None
    model = directory / MODEL_FILE
    if not model.is_file() or not (directory / TOKENIZER_FILE).is_file():
        return None
    if verify_hash and file_sha256(model) != meta.model_sha256:
        return None
    if meta.model_id != make_model_id(meta.precision, meta.model_sha256):
        return None
    return meta
