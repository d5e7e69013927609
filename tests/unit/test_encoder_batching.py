"""Host-side encoder pieces without a model: bucketing, planning, padding, the pipeline."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers, processors

from interest_stream.encoders.batching import (
    CPU_WIDTH_STEPS,
    GPU_WIDTH_STEPS,
    Tokenized,
    bucket_widths,
    pad_batch,
    plan_batches,
    tokenize,
)
from interest_stream.encoders.pipeline import (
    BatchPolicy,
    BatchProducer,
    BufferPool,
    CallTally,
    PaddedBatch,
    run_batches,
)


def _word_tokenizer(max_length: int = 8) -> Tokenizer:
    """A tiny whitespace tokenizer with [CLS]/[SEP], [PAD] = 0 and truncation."""
    words = [f"w{k}" for k in range(50)]
    vocab = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3} | {
        w: 4 + k for k, w in enumerate(words)
    }
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    tokenizer.enable_truncation(max_length)
    return tokenizer


def _text(words: int) -> str:
    return " ".join(f"w{k % 50}" for k in range(words))


def test_tokenize_flattens_ids_and_counts_truncations() -> None:
    tokens = tokenize(_word_tokenizer(max_length=8), [_text(2), "", _text(20), _text(6)], 8)
    assert tokens.lengths.tolist() == [4, 2, 8, 8]
    assert tokens.starts.tolist() == [0, 4, 6, 14]
    assert tokens.ids[:4].tolist() == [2, 4, 5, 3]
    assert tokens.ids[4:6].tolist() == [2, 3]
    assert tokens.truncated == 1  # 20 words were cut; 6 words fit exactly
    assert len(tokenize(_word_tokenizer(), [], 8)) == 0


def test_bucket_width_depends_on_the_length_alone() -> None:
    lengths = np.array([2, 3, 31, 32, 33, 64, 65, 129, 256], dtype=np.int64)
    assert bucket_widths(lengths, CPU_WIDTH_STEPS).tolist() == [
        2,
        4,
        32,
        32,
        36,
        64,
        72,
        144,
        256,
    ]
    assert bucket_widths(lengths, GPU_WIDTH_STEPS).tolist() == [8, 8, 32, 32, 40, 64, 80, 160, 256]
    widths = bucket_widths(np.arange(1, 300, dtype=np.int64), CPU_WIDTH_STEPS)
    assert np.all(widths >= np.arange(1, 300)) and np.all(np.diff(widths) >= 0)


@pytest.mark.parametrize(
    ("widths", "max_texts", "max_tokens", "expected"),
    [
        ([], 4, 100, []),
        ([4, 4, 4, 4, 4], 2, 100, [(0, 2), (2, 4), (4, 5)]),
        ([4, 4, 8, 8, 8], 10, 16, [(0, 2), (2, 4), (4, 5)]),  # 16 tokens: 4x4 or 2x8
        ([2, 6, 10, 30], 10, 100, [(0, 1), (1, 2), (2, 3), (3, 4)]),  # never mixes widths
        ([500, 500], 8, 100, [(0, 1), (1, 2)]),  # wider than the budget: one text each
    ],
)
def test_plan_batches_one_width_per_batch_within_both_caps(
    widths: list[int], max_texts: int, max_tokens: int, expected: list[tuple[int, int]]
) -> None:
    assert plan_batches(np.array(widths, dtype=np.int64), max_texts, max_tokens) == expected


def test_plan_batches_refuses_unsorted_widths() -> None:
    with pytest.raises(ValueError, match="sorted"):
        plan_batches(np.array([8, 4], dtype=np.int64), 4, 100)


@pytest.mark.parametrize("pad_id", [0, 7])
def test_pad_batch_matches_a_per_text_loop(pad_id: int) -> None:
    rng = np.random.default_rng(3)
    lengths = rng.integers(2, 12, size=9).astype(np.int64)
    ids = rng.integers(10, 1000, size=int(lengths.sum())).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    tokens = Tokenized(ids=ids, starts=starts, lengths=lengths, truncated=0)
    rows = np.array([5, 0, 8], dtype=np.int64)
    width = 12
    input_ids = np.full((3, width), -1, dtype=np.int64)
    mask = np.full((3, width), -1, dtype=np.int64)
    pad_batch(tokens, rows, width, input_ids, mask, pad_id)
    for out_row, row in enumerate(rows):
        n = int(lengths[row])
        expected = np.full(width, pad_id)
        expected[:n] = ids[starts[row] : starts[row] + n]
        np.testing.assert_array_equal(input_ids[out_row], expected)
        np.testing.assert_array_equal(mask[out_row], (np.arange(width) < n).astype(np.int64))


def _producer(policy: BatchPolicy) -> BatchProducer:
    return BatchProducer(_word_tokenizer(max_length=64), 64, policy, BufferPool(policy.max_tokens))


def test_producer_covers_every_text_once_in_chunks() -> None:
    policy = BatchPolicy(max_texts=4, max_tokens=64, width_steps=CPU_WIDTH_STEPS, chunk_texts=7)
    texts = [_text(k % 13) for k in range(30)]
    tally = CallTally()
    seen = []
    for batch in _producer(policy).batches(texts, tally):
        width = batch.input_ids.shape[1]
        assert batch.input_ids.shape[0] <= 4 and batch.input_ids.size <= 64
        # Every row has the width of its own bucket, whatever else is in the batch.
        lengths = batch.attention_mask.sum(axis=1)
        assert np.all(bucket_widths(lengths, CPU_WIDTH_STEPS) == width)
        seen.extend(batch.rows.tolist())
    assert sorted(seen) == list(range(30))
    assert tally.texts == 30 and tally.batches >= 30 // 4
    assert tally.padded_tokens >= tally.tokens


def _fake_run(batch: PaddedBatch) -> np.ndarray:
    """A 'model' whose row is a function of that row's tokens alone."""
    ids = batch.input_ids * batch.attention_mask
    return np.stack([ids.sum(axis=1), batch.attention_mask.sum(axis=1)], axis=1).astype(np.float32)


@pytest.mark.parametrize(("pipelined", "consumers"), [(False, 1), (True, 1), (True, 3)])
def test_run_batches_writes_each_row_in_the_callers_order(pipelined: bool, consumers: int) -> None:
    policy = BatchPolicy(max_texts=3, max_tokens=48, width_steps=CPU_WIDTH_STEPS, chunk_texts=5)
    producer = _producer(policy)
    texts = [_text(1 + k % 9) for k in range(23)]
    out = np.full((len(texts), 2), np.nan, dtype=np.float32)
    tally = CallTally()
    run_batches(
        producer.batches(texts, tally),
        _fake_run,
        out,
        consumers=consumers,
        queue_depth=2,
        release=producer.release,
        tally=tally,
        pipelined=pipelined,
    )
    expected_lengths = [2 + 1 + k % 9 for k in range(23)]
    assert out[:, 1].tolist() == expected_lengths
    assert tally.session_seconds >= 0.0


@pytest.mark.parametrize("where", ["run", "produce"])
def test_run_batches_raises_the_first_error_without_hanging(where: str) -> None:
    policy = BatchPolicy(max_texts=2, max_tokens=32, width_steps=CPU_WIDTH_STEPS, queue_depth=1)
    producer = _producer(policy)
    texts = [_text(3)] * 40
    calls = []

    def failing_run(batch: PaddedBatch) -> np.ndarray:
        calls.append(threading.current_thread().name)
        if where == "run" and len(calls) == 3:
            raise RuntimeError("session failed")
        time.sleep(0.001)
        return _fake_run(batch)

    def batches() -> Iterator[PaddedBatch]:
        for count, batch in enumerate(producer.batches(texts, CallTally())):
            if where == "produce" and count == 4:
                raise ValueError("tokenizer failed")
            yield batch

    started = time.perf_counter()
    with pytest.raises((RuntimeError, ValueError), match="failed"):
        run_batches(
            batches(),
            failing_run,
            np.zeros((len(texts), 2), dtype=np.float32),
            consumers=2,
            queue_depth=1,
            release=producer.release,
            tally=CallTally(),
            pipelined=True,
        )
    assert time.perf_counter() - started < 5


def test_buffer_pool_reuses_buffers_and_serves_oversized_batches() -> None:
    pool = BufferPool(capacity=16)
    first = pool.take(12)
    pool.give(first)
    assert pool.take(16) is first
    wide = pool.take(40)
    assert wide.capacity == 40
    ids, mask = wide.views(4, 10)
    assert ids.shape == mask.shape == (4, 10)


def _overlaps(pipelined: bool, wait_s: float, count: int) -> list[bool]:
    """For each batch the device runs: had the host produced the next one meanwhile?"""
    policy = BatchPolicy(max_texts=1, max_tokens=64, width_steps=CPU_WIDTH_STEPS)
    producer = _producer(policy)
    texts = [_text(4)] * count
    produced = [threading.Event() for _ in texts]
    overlapped: list[bool] = []

    def host() -> Iterator[PaddedBatch]:
        for k, batch in enumerate(producer.batches(texts, CallTally())):
            produced[k].set()
            yield batch

    def device(batch: PaddedBatch) -> np.ndarray:
        k = len(overlapped)
        following = produced[k + 1] if k + 1 < len(produced) else None
        overlapped.append(following is None or following.wait(wait_s))
        return _fake_run(batch)

    run_batches(
        host(),
        device,
        np.zeros((len(texts), 2), dtype=np.float32),
        consumers=1,
        queue_depth=4,
        release=producer.release,
        tally=CallTally(),
        pipelined=pipelined,
    )
    return overlapped


def test_pipeline_prepares_the_next_batches_while_one_runs() -> None:
    """Pipelined, the host prepares batch k+1 while batch k runs on the device; serial, it
    cannot. Checked with events, not timings: while running batch k the device waits for
    the host to have produced batch k+1."""
    assert _overlaps(pipelined=True, wait_s=5.0, count=6) == [True] * 6
    assert _overlaps(pipelined=False, wait_s=0.05, count=6) == [False] * 5 + [True]
