"""An encoder that looks vectors up in a table computed beforehand: encoding at zero cost.

The pipeline benchmark uses it to measure everything except the encoder, with vectors
from the real model so that the stored profiles look like production ones.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from interest_stream.encoders.base import Encoder, Vectors
from interest_stream.streams.errors import ConfigurationError


def save_vectors(path: Path, texts: Sequence[str], encoder: Encoder) -> None:
    """Encode `texts` once and save them with their texts and model id."""
    vectors = encoder.encode(list(texts))
    buffer = io.BytesIO()
    meta = json.dumps({"model_id": encoder.model_id, "texts": list(texts)}).encode()
    np.savez(buffer, vectors=vectors, meta=np.frombuffer(meta, dtype=np.uint8))
    path.write_bytes(buffer.getvalue())


class PrecomputedEncoder:
    """Vectors by exact text from a file written by `save_vectors`."""

    def __init__(self, path: Path) -> None:
        try:
            with np.load(path, allow_pickle=False) as archive:
                meta = json.loads(archive["meta"].tobytes().decode())
                self._vectors = archive["vectors"].astype(np.float32)
        except (OSError, KeyError, ValueError) as exc:
            raise ConfigurationError(f"cannot read precomputed vectors {path}: {exc}") from exc
        self._row = {text: i for i, text in enumerate(meta["texts"])}
        digest = hashlib.sha1(path.read_bytes()).hexdigest()[:10]
        self._model_id = f"{meta['model_id']}+precomputed:{digest}"

    @property
    def model_id(self) -> str:
        return self._model_id

    @property
    def dim(self) -> int:
        return int(self._vectors.shape[1])

    def encode(self, texts: Sequence[str]) -> Vectors:
        try:
            rows = [self._row[text] for text in texts]
        except KeyError as exc:
            raise ConfigurationError(f"text not in the precomputed table: {exc}") from exc
        found: Vectors = self._vectors[rows]
        return found
