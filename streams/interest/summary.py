"""The bounded event summary a user's clusters are built from.

Clusters must not depend on the order events arrive in, so they are never updated online:
each user keeps the `summary_size` events with the highest rank log|w| + λ·t (a key that
does not depend on the reference time; ties by event key) and the clusters are computed
from that set. A set's top N does not depend on the order its members were added, since an
entry that drops out can never rank above the ones kept, so any permutation and batching of
the same events gives the same summary.

An entry is small: a 64-bit key of the event id, its time and weight, a short label and
its vector quantized to 4 bits a dimension with one scale per vector (192 bytes for 384
dimensions; cosine to the original about 0.99, see tests). The vector is quantized once,
when the entry is made, so every path (batch sizes, stores, restarts) sees the same values.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

LEVELS = 7
"""Quantized values are -LEVELS..LEVELS, stored as 4-bit nibbles LEVELS+1 apart."""
LABEL_CHARS = 64
"""A label is the event text cut to a readable excerpt of at most this many characters."""

FloatMatrix = npt.NDArray[np.float64]


@lru_cache(maxsize=1 << 13)
def event_key(event_id: str) -> int:
    """A stable 64-bit key of an event id (blake2b): identity and tie-break, 8 bytes.

    Cached: one event's key is asked for by dedup in the batch core, again by the fold's
    own dedup, by the summary and by the recent ids, all within one batch; the cache makes
    that one hash. Its size covers eight full batches of distinct ids (about 2 MB; 2^16
    entries were 15 MB that a worker's memory took five minutes to fill at 200 events/s)."""
    return int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=8).digest(), "little")


def label_excerpt(text: str, limit: int = LABEL_CHARS) -> str:
    """The start of a text as a label: up to its first sentence end if that comes early,
    else cut at a word boundary with an ellipsis."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    for stop in (". ", "! ", "? ", "; ", " | ", " - "):
        end = text.find(stop, 12, limit)
        if end != -1:
            return text[:end]
    cut = text.rfind(" ", 0, limit - 1)
    return text[: cut if cut >= limit // 2 else limit - 1] + "…"


def quantize(vectors: npt.ArrayLike) -> tuple[bytes, npt.NDArray[np.float32]]:
    """Rows of `vectors` as packed 4-bit codes (dim/2 bytes a row) and a scale a row."""
    rows = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
    peak = np.abs(rows).max(axis=1)
    scales = np.where(peak > 0, peak / LEVELS, 1.0).astype(np.float32)
    codes = np.clip(np.rint(rows / scales[:, None]), -LEVELS, LEVELS).astype(np.int16)
    nibbles = (codes + LEVELS + 1).astype(np.uint8)  # 1..15; 0 never occurs
    if nibbles.shape[1] % 2:
        nibbles = np.concatenate([nibbles, np.full((len(rows), 1), LEVELS + 1, np.uint8)], 1)
    packed = (nibbles[:, 0::2] << 4) | nibbles[:, 1::2]
    return packed.tobytes(), scales


def dequantize(codes: bytes, scales: npt.ArrayLike, dim: int) -> npt.NDArray[np.float32]:
    """Inverse of `quantize`: one float32 row per scale."""
    scale = np.atleast_1d(np.asarray(scales, dtype=np.float32))
    packed = np.frombuffer(codes, dtype=np.uint8).reshape(len(scale), -1)
    nibbles = np.empty((len(scale), packed.shape[1] * 2), dtype=np.int16)
    nibbles[:, 0::2] = packed >> 4
    nibbles[:, 1::2] = packed & 0x0F
    values: npt.NDArray[np.float32] = (nibbles[:, :dim] - (LEVELS + 1)).astype(np.float32) * scale[
        :, None
    ]
    return values


@dataclass(frozen=True, slots=True)
class SummaryEntry:
    """One event kept in the summary: key, time, signed weight, label, quantized vector."""

    key: int
    ts: float
    weight: float
    label: str
    code: bytes
    scale: float

    @classmethod
    def of(
        cls, event_id: str, ts: float, weight: float, text: str, vector: npt.ArrayLike
    ) -> SummaryEntry:
        code, scales = quantize(vector)
        return cls(event_key(event_id), ts, weight, label_excerpt(text), code, float(scales[0]))

    @classmethod
    def many(
        cls,
        event_ids: Sequence[str],
        times: Sequence[float],
        weights: Sequence[float],
        texts: Sequence[str],
        vectors: npt.ArrayLike,
    ) -> list[SummaryEntry]:
        """`of` for many events with one quantization of all their rows (the same bytes
        as one at a time: quantization works row by row)."""
        if not event_ids:
            return []
        code, scales = quantize(vectors)
        width = len(code) // len(event_ids)
        return [
            cls(event_key(i), t, w, label_excerpt(x), code[k * width : (k + 1) * width], s)
            for k, (i, t, w, x, s) in enumerate(
                zip(event_ids, times, weights, texts, scales.tolist(), strict=True)
            )
        ]

    def rank(self, decay: float) -> float:
        """log|w| + λ·t: larger is kept; independent of any reference time."""
        return math.log(abs(self.weight)) + decay * self.ts

    def mass(self, t_ref: float, decay: float) -> float:
        """The signed decayed weight of the event at `t_ref`."""
        return self.weight * math.exp(-decay * max(0.0, t_ref - self.ts))


def ranked(entries: Iterable[SummaryEntry], decay: float) -> list[SummaryEntry]:
    """Entries highest rank first; ties by key (the canonical order of a summary)."""
    return sorted(entries, key=lambda e: (-e.rank(decay), e.key))


def merge_summary(
    current: Iterable[SummaryEntry], new: Iterable[SummaryEntry], size: int, decay: float
) -> tuple[SummaryEntry, ...]:
    """The `size` highest-ranked entries of both (first of a key wins), canonical order."""
    by_key: dict[int, SummaryEntry] = {}
    for entry in (*current, *new):
        if entry.weight != 0.0:
            by_key.setdefault(entry.key, entry)
    return tuple(ranked(by_key.values(), decay)[:size])


def summary_vectors(entries: Sequence[SummaryEntry], dim: int) -> FloatMatrix:
    """The dequantized vectors of `entries`, unit rows (n, dim) in float64."""
    if not entries:
        return np.zeros((0, dim))
    codes = b"".join(e.code for e in entries)
    rows = dequantize(codes, [e.scale for e in entries], dim).astype(np.float64)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    unit: FloatMatrix = rows / np.where(norms > 0, norms, 1.0)
    return unit
