"""Host-side work of the encoder: texts to padded, length-bucketed batches, in bulk.

Tokenization is one `encode_batch` call (Rust, all cores, GIL released); token ids leave
the Encoding objects through C-level iterators into one flat array; planning and padding
are numpy over whole batches. No Python statement runs per text on this path.

Every text is padded to a width that depends on its own token count only (its bucket),
and a batch holds texts of one width. So the shapes a text is computed in never depend on
its batch-mates, which is what makes its vector bit-identical however it is batched (the
CPU kernels compute each row alike whatever the number of rows; the tests check it).
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from tokenizers import Tokenizer

IntArray = npt.NDArray[np.int64]

_IDS = operator.attrgetter("ids")

# (longest length of the tier, width step): short texts, the bulk of traffic, waste at most
# one pad token; long ones are few and attention's cost is what matters for them.
CPU_WIDTH_STEPS: tuple[tuple[int, int], ...] = ((32, 2), (64, 4), (128, 8), (1 << 30, 16))
# Tensor cores want multiples of 8; bigger steps fill bigger GPU batches.
GPU_WIDTH_STEPS: tuple[tuple[int, int], ...] = ((64, 8), (128, 16), (1 << 30, 32))


@dataclass(frozen=True)
class Tokenized:
    """Token ids of many texts, text after text, with where each starts and its length."""

    ids: IntArray
    starts: IntArray
    lengths: IntArray
    truncated: int

    def __len__(self) -> int:
        return len(self.lengths)


def tokenize(tokenizer: Tokenizer, texts: Sequence[str], max_length: int) -> Tokenized:
    """Tokenize `texts` (truncation is the tokenizer's own, at `max_length` tokens)."""
    # encode_batch_fast skips character offsets, which nothing here reads.
    encode = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)
    encodings = encode(list(texts))
    count = len(encodings)
    lengths = np.fromiter(map(len, encodings), dtype=np.int64, count=count)
    total = int(lengths.sum())
    ids = np.fromiter(itertools.chain.from_iterable(map(_IDS, encodings)), np.int64, total)
    starts = np.zeros(count, dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    # Only a text that reached the cap can have been cut; those are few, so look at them.
    at_cap = np.flatnonzero(lengths >= max_length).tolist()
    truncated = sum(1 for row in at_cap if encodings[row].overflowing)
    return Tokenized(ids=ids, starts=starts, lengths=lengths, truncated=truncated)


def bucket_widths(lengths: IntArray, steps: Sequence[tuple[int, int]]) -> IntArray:
    """The width each text is padded to: its length rounded up to its tier's step."""
    widths = np.empty_like(lengths)
    lower = -1
    for limit, step in steps:  # a loop over a few tiers, not over texts
        tier = (lengths > lower) & (lengths <= limit)
        widths[tier] = -(-lengths[tier] // step) * step
        lower = limit
    return widths


def plan_batches(widths: IntArray, max_texts: int, max_tokens: int) -> list[tuple[int, int]]:
    """Cut texts sorted by width into [start, end) batches of one width each.

    A batch holds at most `max_texts` texts and `max_tokens` padded tokens (width x texts);
    a single text wider than `max_tokens` still forms a batch of its own.
    """
    if max_texts < 1 or max_tokens < 1:
        raise ValueError("batch caps must be positive")
    count = len(widths)
    if count == 0:
        return []
    if np.any(widths[1:] < widths[:-1]):
        raise ValueError("widths must be sorted")
    run_starts = [0, *(np.flatnonzero(np.diff(widths)) + 1).tolist(), count]
    batches: list[tuple[int, int]] = []
    for start, end in itertools.pairwise(run_starts):  # one iteration per distinct width
        size = max(1, min(max_texts, max_tokens // int(widths[start])))
        batches.extend((first, min(first + size, end)) for first in range(start, end, size))
    return batches


def pad_batch(
    tokens: Tokenized,
    rows: IntArray,
    width: int,
    input_ids: IntArray,
    attention_mask: IntArray,
    pad_id: int = 0,
) -> None:
    """Write texts `rows` of `tokens`, right-padded to `width`, into the (len(rows), width)
    arrays `input_ids` and `attention_mask` (1 on real tokens)."""
    positions = np.arange(width, dtype=np.int64)
    real = positions < tokens.lengths[rows][:, None]
    index = tokens.starts[rows][:, None] + positions
    np.minimum(index, len(tokens.ids) - 1, out=index)  # pad slots read any valid id...
    np.take(tokens.ids, index, out=input_ids)
    if pad_id:
        input_ids[~real] = pad_id  # ...and are overwritten here
    else:
        input_ids *= real
    np.copyto(attention_mask, real, casting="unsafe")
