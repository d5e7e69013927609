"""Keeps the device busy: the next batches are tokenized and padded while one runs.

A producer thread turns texts into padded batches (encoders/batching.py) in preallocated,
pooled arrays and hands them over through a bounded queue; consumers (the calling thread,
plus more threads when several CPU runs go side by side) run them and write their rows of
the result. Large calls are tokenized in chunks of similar character length, so the first
batch runs while later chunks are still being tokenized. Small calls skip the threads.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from tokenizers import Tokenizer

from interest_stream.encoders.batching import (
    IntArray,
    bucket_widths,
    pad_batch,
    plan_batches,
    tokenize,
)

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class BatchPolicy:
    """How texts are cut into batches on one device."""

    max_texts: int
    max_tokens: int
    width_steps: tuple[tuple[int, int], ...]
    # Texts tokenized at a time: the pipeline's look-ahead. Batches are planned (sorted by
    # length) within a chunk, so a chunk should hold several full batches.
    chunk_texts: int = 4096
    # Batches waiting, padded, for a consumer.
    queue_depth: int = 4


class TokenBuffer:
    """A pair of flat int64 arrays that batches of up to `capacity` tokens are padded into."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._ids = np.empty(capacity, dtype=np.int64)
        self._mask = np.empty(capacity, dtype=np.int64)

    def views(self, texts: int, width: int) -> tuple[IntArray, IntArray]:
        size = texts * width
        return self._ids[:size].reshape(texts, width), self._mask[:size].reshape(texts, width)


class BufferPool:
    """Reuses token buffers across batches and calls; grows to the number in flight."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._free: queue.SimpleQueue[TokenBuffer] = queue.SimpleQueue()

    def take(self, tokens: int) -> TokenBuffer:
        if tokens > self._capacity:  # one text wider than a whole batch budget: one-off
            return TokenBuffer(tokens)
        try:
            return self._free.get_nowait()
        except queue.Empty:
            return TokenBuffer(self._capacity)

    def give(self, buffer: TokenBuffer) -> None:
        if buffer.capacity == self._capacity:
            self._free.put(buffer)


@dataclass
class PaddedBatch:
    """One batch ready to run: the caller's row numbers and the padded model inputs."""

    rows: IntArray
    input_ids: IntArray
    attention_mask: IntArray
    buffer: TokenBuffer


@dataclass
class CallTally:
    """What one encode call did; merged into the encoder's running stats at its end."""

    texts: int = 0
    batches: int = 0
    tokens: int = 0
    padded_tokens: int = 0
    truncations: int = 0
    session_seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add_run(self, seconds: float) -> None:
        with self.lock:
            self.session_seconds += seconds


class BatchProducer:
    """Texts -> `PaddedBatch`es for one device's policy (pure host work, no session)."""

    def __init__(
        self,
        tokenizer: Tokenizer,
        max_length: int,
        policy: BatchPolicy,
        pool: BufferPool,
        pad_id: int = 0,
    ) -> None:
        self._tokenizer = tokenizer
        self._max_length = max_length
        self.policy = policy
        self._pool = pool
        self._pad_id = pad_id

    def batches(self, texts: Sequence[str], tally: CallTally) -> Iterator[PaddedBatch]:
        for positions in self._chunks(texts):
            chunk = list(map(texts.__getitem__, positions.tolist()))
            tokens = tokenize(self._tokenizer, chunk, self._max_length)
            widths = bucket_widths(tokens.lengths, self.policy.width_steps)
            order = np.argsort(widths, kind="stable")
            sorted_widths = widths[order]
            plan = plan_batches(sorted_widths, self.policy.max_texts, self.policy.max_tokens)
            tally.texts += len(tokens)
            tally.tokens += int(tokens.lengths.sum())
            tally.padded_tokens += int(widths.sum())
            tally.truncations += tokens.truncated
            tally.batches += len(plan)
            for start, end in plan:
                local_rows = order[start:end]
                width = int(sorted_widths[start])
                buffer = self._pool.take(len(local_rows) * width)
                input_ids, attention_mask = buffer.views(len(local_rows), width)
                pad_batch(tokens, local_rows, width, input_ids, attention_mask, self._pad_id)
                yield PaddedBatch(positions[local_rows], input_ids, attention_mask, buffer)

    def release(self, batch: PaddedBatch) -> None:
        self._pool.give(batch.buffer)

    def _chunks(self, texts: Sequence[str]) -> Iterator[IntArray]:
        count, size = len(texts), self.policy.chunk_texts
        if count <= size:
            yield np.arange(count, dtype=np.int64)
            return
        # Character length predicts token length well enough to keep each chunk's texts
        # alike in length, so batches planned within a chunk stay tightly padded.
        chars = np.fromiter(map(len, texts), dtype=np.int64, count=count)
        by_length = np.argsort(chars, kind="stable")
        for start in range(0, count, size):
            yield by_length[start : start + size]


_END = object()


def run_batches(
    batches: Iterator[PaddedBatch],
    run: Callable[[PaddedBatch], FloatArray],
    out: FloatArray,
    *,
    consumers: int,
    queue_depth: int,
    release: Callable[[PaddedBatch], None],
    tally: CallTally,
    pipelined: bool,
) -> None:
    """Run every batch through `run`, writing its rows of `out` (any order of completion).

    With `pipelined`, a producer thread prepares batches while `consumers` threads (the
    caller among them) run them; otherwise everything happens on the calling thread.
    The first error anywhere stops the rest and is raised here.
    """

    def execute(batch: PaddedBatch) -> None:
        started = time.perf_counter()
        result = run(batch)
        tally.add_run(time.perf_counter() - started)
        out[batch.rows] = result
        release(batch)

    if not pipelined:
        for batch in batches:
            execute(batch)
        return

    handoff: queue.Queue[object] = queue.Queue(maxsize=max(1, queue_depth))
    stop = threading.Event()
    errors: list[BaseException] = []

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for batch in batches:
                if not put(batch):
                    return
        except BaseException as error:  # handed to the caller, never swallowed
            errors.append(error)
            stop.set()
        finally:
            put(_END)

    def consume() -> None:
        try:
            while not stop.is_set():
                try:
                    item = handoff.get(timeout=0.05)
                except queue.Empty:
                    continue
                if item is _END:
                    put(_END)  # let the other consumers see it too
                    return
                assert isinstance(item, PaddedBatch)
                execute(item)
        except BaseException as error:
            errors.append(error)
            stop.set()

    threads = [threading.Thread(target=produce, name="encoder-producer", daemon=True)]
    threads += [
        threading.Thread(target=consume, name=f"encoder-run-{k}", daemon=True)
        for k in range(1, consumers)
    ]
    for thread in threads:
        thread.start()
    consume()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
