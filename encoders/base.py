"""The text-to-vector boundary: every encoder the pipeline can use satisfies `Encoder`.

The batch core only ever sees this protocol, so the ONNX runtime, the hashing encoder used
in tests and benchmarks, and any future backend are interchangeable.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, Protocol, TypeVar, runtime_checkable

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]


@runtime_checkable
class Encoder(Protocol):
    """Maps texts to L2-normalized float32 vectors of a fixed dimension.

    Guarantee: deterministic for a given `model_id`; row i of the result encodes texts[i].
    """

    @property
    def model_id(self) -> str:
        """Identifies the weights and precision; stored next to every vector."""
        ...

    @property
    def dim(self) -> int:
        """Length of every vector."""
        ...

    def encode(self, texts: Sequence[str]) -> Vectors:
        """Encode texts.

        Args:
            texts: The texts, in any order and with repeats.

        Returns:
            An array of shape (len(texts), dim), row i encoding texts[i], each of unit
            length.
        """
        ...


@runtime_checkable
class OnDevice(Protocol):
    """An encoder that runs on a device says which: "cpu" or "cuda"."""

    @property
    def device(self) -> str:
        """Where the encoder runs: "cpu" or "cuda"."""
        ...


Inner = TypeVar("Inner", bound=Encoder)


class Wrapping(Generic[Inner]):
    """Base of an encoder that wraps another (a cache, a counter).

    It has the same `model_id` and `dim`, and the wrapped encoder as `inner`. Subclasses
    define `encode`.

    Args:
        inner: The wrapped encoder.
    """

    def __init__(self, inner: Inner) -> None:
        self._inner = inner

    @property
    def model_id(self) -> str:
        """The wrapped encoder's model id."""
        return self._inner.model_id

    @property
    def dim(self) -> int:
        """The wrapped encoder's dimension."""
        return self._inner.dim

    @property
    def inner(self) -> Inner:
        """The wrapped encoder."""
        return self._inner
