"""The streaming worker: the only module that knows Faust.

One agent consumes the co-partitioned topics clicks, reviews and queries with raw
serializers (so decoding and validation happen in our code and bad bytes reach the DLQ
intact) and takes batches with `noack_take`. Each batch is folded by the same `BatchCore`
as the embedded mode, on a worker thread, into pending profiles. A flush writes every
pending profile once, then the DLQ records and profile updates are published and
confirmed, and only then are the batches' offsets acknowledged: a crash anywhere before
loses nothing (the events come again; nothing of them was stored, or what was stored is
recognised by its applied offsets). The flush comes when the worker has caught up (a batch
smaller than the maximum), or at most `flush_interval_ms` after the first pending fold
under backlog, so a busy user is written once for many events.

Racing workers are fenced by the store (store/base.py); on a rebalance the worker drops
what it had pending (its events come again to their new owner). Transient store and broker
failures are retried with capped backoff; anything else crashes the worker (a
`CrashingSupervisor`: a poisoned agent is not silently restarted). Metrics: streams/metrics.py.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from interest_stream.schemas.events import INPUT_TOPICS
from interest_stream.schemas.records import Provenance, RawRecord, Rejection
from interest_stream.schemas.updates import ProfileUpdate
from interest_stream.store.base import ProfileStore
from interest_stream.streams.connection import PRODUCER_BATCH_BYTES, KafkaConnection
from interest_stream.streams.core import pauses as points
from interest_stream.streams.core.batch import BatchCore, BatchOutcome
from interest_stream.streams.core.dead_letters import dead_letter
from interest_stream.streams.core.items import apply_items
from interest_stream.streams.core.retry import RetryPolicy
from interest_stream.streams.core.routing import Forward, first_arrival, forward_headers
from interest_stream.streams.errors import ConfigurationError, MissingExtraError, StoreError
from interest_stream.streams.metrics import WorkerMetrics
from interest_stream.streams.settings import Settings

if TYPE_CHECKING:
    from faust import Stream
    from faust.types import AppT, StreamT

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_BACKOFF_S = 30.0
MAX_PENDING_USERS = 20_000
"""A flush comes at the latest when this many users are pending (memory stays bounded)."""


def _credentials(connection: KafkaConnection) -> Any:
    """Faust's credentials object for `connection` (None for PLAINTEXT)."""
    import faust

    if connection.protocol == "PLAINTEXT":
        return None
    if connection.protocol == "SSL":
        return faust.SSLCredentials(connection.ssl_context())
    return faust.SASLCredentials(
        username=connection.username,
        password=connection.password,
        mechanism=connection.mechanism,
        ssl_context=connection.ssl_context(),
    )


class Pipeline:
    """What the agent needs besides Faust: the core, its thread and the retry policy."""

    def __init__(self, core: BatchCore, metrics: WorkerMetrics, retry: RetryPolicy) -> None:
        self.core = core
        self.metrics = metrics
        self.retry = retry
        # One thread: folds and flushes run strictly one after another per worker, and the
        # event loop stays free for heartbeats while the encoder and the store work.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch-core")

    async def run(self, work: Callable[..., T], *args: Any, operation: str = "batch") -> T:
        """Run `work` on the batch thread under the retry policy (streams/core/retry.py)."""
        loop = asyncio.get_running_loop()

        def failed(exc: BaseException) -> None:
            if isinstance(exc, StoreError):
                self.metrics.store_errors.labels(operation=operation).inc()

        return await self.retry.run(
            operation, lambda: loop.run_in_executor(self.executor, work, *args), failed
        )

    async def publish(self, label: str, send: Callable[[], Awaitable[Any]]) -> None:
        """Await a publish under the retry policy (at-least-once)."""
        await self.retry.run(label, send, lambda exc: self.metrics.publish_errors.inc())


@dataclass
class Window:
    """What was folded since the last flush: the events to acknowledge after it, the
    rejects to send to the DLQ with it, and when each record was appended to Kafka."""

    events: list[Any] = field(default_factory=list)
    rejects: list[Rejection] = field(default_factory=list)
    forwards: list[Forward] = field(default_factory=list)
    appended: list[float] = field(default_factory=list)
    opened: float | None = None
    revoked: bool = False
    acked: dict[Any, int] = field(default_factory=dict)  # partition -> next offset

    def add(self, batch: Sequence[Any], outcome: BatchOutcome) -> None:
        if self.opened is None:
            self.opened = time.monotonic()
        self.events.extend(batch)
        self.rejects.extend(outcome.rejects)
        self.forwards.extend(outcome.forwards)
        self.appended.extend(e.message.timestamp for e in batch if e.message.timestamp)

    def age(self) -> float:
        return 0.0 if self.opened is None else time.monotonic() - self.opened

    def clear(self) -> None:
        self.events, self.rejects, self.forwards, self.appended = [], [], [], []
        self.opened = None


class StreamWorker:
    """The Faust app and what it runs: the events agent (fold, then flush when due), the
    items agent, the flush timer, the lag gauge and the rebalance hook, as methods over
    one `Window` (see the module doc). `app` is ready for `faust.Worker`."""

    def __init__(
        self, settings: Settings, core: BatchCore, metrics: WorkerMetrics | None = None
    ) -> None:
        try:
            import faust
            from mode import CrashingSupervisor
        except ImportError as exc:  # pragma: no cover - depends on the installed extras
            raise MissingExtraError("faust-streaming", "kafka") from exc

        self.settings = settings
        self.core = core
        self.metrics = metrics or WorkerMetrics()
        self.pipeline = Pipeline(core, self.metrics, RetryPolicy(budget_s=settings.retry_budget_s))
        self.window = Window()
        self.flush_interval = settings.flush_interval_ms / 1000
        # Folds and flushes of the events agent and the flush timer take turns.
        self._lock = asyncio.Lock()
        self._stream: StreamT[Any] | None = None  # the events agent's, for acks
        connection = KafkaConnection.from_settings(settings)
        self.app: AppT = faust.App(
            settings.consumer_group,
            broker=[f"kafka://{server}" for server in connection.servers()],
            broker_credentials=_credentials(connection),
            value_serializer="raw",
            key_serializer="raw",
            store="memory://",
            # Faust makes its data folder even with no tables: keep it out of the working
            # directory (the worker keeps nothing there).
            datadir=str(Path(tempfile.gettempdir()) / "interest-stream-faust"),
            web_enabled=settings.web_enabled,
            web_bind="127.0.0.1",
            web_port=settings.web_port,
            topic_disable_leader=True,
            topic_allow_declare=False,
            consumer_auto_offset_reset="earliest",
            broker_session_timeout=settings.kafka_session_timeout_s,
            broker_heartbeat_interval=max(1.0, settings.kafka_session_timeout_s / 4),
            # A batch may wait for a restarting store; the poll interval must outlast that.
            broker_max_poll_interval=settings.kafka_max_poll_interval_s,
            broker_commit_interval=1.0,
            producer_acks=-1,
            producer_max_batch_size=PRODUCER_BATCH_BYTES,
            stream_wait_empty=True,
            worker_redirect_stdouts=False,
        )
        raw: dict[str, Any] = {
            "key_type": bytes,
            "value_type": bytes,
            "value_serializer": "raw",
            "key_serializer": "raw",
        }
        self.repartition_topic = settings.topic(settings.repartition_topic)
        self.updates_topic = settings.topic(settings.updates_topic)
        self.dlq_topic = settings.topic(settings.dlq_topic)
        # The repartition topic carries events that producers put on another partition than
        # their user's (streams/core/routing.py); co-partitioned with the inputs.
        inputs = self.app.topic(
            *(settings.topic(name) for name in INPUT_TOPICS), self.repartition_topic, **raw
        )
        self.app.agent(inputs, supervisor_strategy=CrashingSupervisor, concurrency=1)(
            self.fold_events
        )
        if core.items is not None:
            # A null value erases the item.
            items = self.app.topic(settings.topic(settings.items_topic), allow_empty=True, **raw)
            self.app.agent(items, supervisor_strategy=CrashingSupervisor, concurrency=1)(
                self.catalogue_items
            )
        self.app.timer(interval=max(0.05, self.flush_interval / 2))(self.flush_when_due)
        self.app.timer(interval=5.0)(self.observe_lag)
        self.app.on_partitions_revoked.connect(self.drop_pending)

    # -- agents -----------------------------------------------------------------------------

    async def fold_events(self, stream: StreamT[Any]) -> None:
        """The events agent: fold each batch, flush when caught up or due."""
        settings, core, window = self.settings, self.core, self.window
        self._stream = stream
        async for batch in _batches(stream, settings):
            records = [
                RawRecord(event.message.value or b"", _origin(event.message, settings))
                for event in batch
            ]
            async with self._lock:
                if window.revoked:
                    await self.flush_window()  # discards what the rebalance invalidated
                outcome = await self.pipeline.run(core.fold, records, operation="fold")
                _observe_fold(self.metrics, records, outcome, core)
                window.add(batch, outcome)
                caught_up = len(batch) < settings.batch_size
                if (
                    caught_up
                    or window.age() >= self.flush_interval
                    or len(core.pending) >= MAX_PENDING_USERS
                ):
                    await self.flush_window()

    async def catalogue_items(self, stream: StreamT[Any]) -> None:
        """The items agent: store (or erase) catalogue items, dead-letter the bad ones."""
        settings, catalog = self.settings, self.core.items
        assert catalog is not None  # registered only with a catalogue
        async for batch in _batches(stream, settings):
            entries = [
                (
                    RawRecord(event.message.value or b"", _origin(event.message, settings)),
                    event.message.value is None,
                )
                for event in batch
            ]
            outcome = await self.pipeline.run(
                apply_items, entries, self.core.encoder, catalog, operation="items"
            )
            await self.pipeline.publish(
                "publish", functools.partial(self._send_confirmed, outcome.rejects)
            )
            for event in batch:
                await stream.ack(event)
            log.info(
                "items: %d stored, %d erased, %d to DLQ",
                outcome.stored,
                outcome.erased,
                len(outcome.rejects),
            )

    # -- the flush --------------------------------------------------------------------------

    async def flush_window(self) -> None:
        """Flush, publish, then acknowledge; the caller holds the lock."""
        core, metrics, window = self.core, self.metrics, self.window
        if window.revoked:
            window.revoked = False
            await self.pipeline.run(core.discard, operation="discard")
            window.clear()
            return
        if not window.events:
            return
        started = time.perf_counter()
        outcome = await self.pipeline.run(core.flush, operation="flush")
        flushed = time.perf_counter()
        metrics.flush_seconds.observe(outcome.write_seconds)
        updates = [*outcome.updates, *outcome.reannounced]
        core.pauses.reach(points.BEFORE_PUBLISH)
        await self.pipeline.publish(
            "publish", lambda: self._publish(updates, window.rejects, window.forwards)
        )
        published = time.time()
        publish_s = time.perf_counter() - flushed
        core.pauses.reach(points.BEFORE_ACK)
        # Acks only now: the profiles, their announcements and the forwarded events are
        # durable.
        assert self._stream is not None  # events come only through the agent's stream
        for event in window.events:
            await self._stream.ack(event)
        for event in window.events:
            tp = event.message.tp
            window.acked[tp] = max(window.acked.get(tp, 0), event.message.offset + 1)
        for appended in window.appended:
            metrics.freshness.observe(max(0.0, published - appended))
        metrics.updates.inc(len(updates))
        metrics.applied.inc(outcome.applied)
        metrics.profile_writes.inc(outcome.writes)
        metrics.bytes_written.inc(outcome.bytes_written)
        metrics.fence_conflicts.inc(outcome.lost_fences)
        metrics.batch_seconds.observe(window.age())
        log.info(
            "flush: %d records, %d applied, %d to DLQ, %d forwarded, %d profiles written"
            " (%d bytes), %d lost fences, %d re-announced, write %.3f s, flush %.3f s,"
            " publish %.3f s, total %.3f s",
            len(window.events),
            outcome.applied,
            len(window.rejects),
            len(window.forwards),
            outcome.writes,
            outcome.bytes_written,
            outcome.lost_fences,
            len(outcome.reannounced),
            outcome.write_seconds,
            flushed - started,
            publish_s,
            time.perf_counter() - started,
        )
        window.clear()

    async def _send_rejects(self, rejections: Sequence[Rejection]) -> list[Awaitable[Any]]:
        self.metrics.dlq.inc(len(rejections))
        futures = []
        for rejection in rejections:
            letter = dead_letter(rejection, self.settings.dlq_max_bytes)
            futures.append(
                await self.app.producer.send(
                    self.dlq_topic, letter.key, letter.value, None, None, letter.headers
                )
            )
        return futures

    async def _send_confirmed(self, rejections: Sequence[Rejection]) -> None:
        await asyncio.gather(*await self._send_rejects(rejections))

    async def _publish(
        self,
        updates: Sequence[ProfileUpdate],
        rejects: Sequence[Rejection],
        forwards: Sequence[Forward],
    ) -> None:
        """DLQ records, forwarded events and profile updates of one flush, confirmed by the
        broker."""
        send = self.app.producer.send
        futures = await self._send_rejects(rejects)
        for forward in forwards:
            key = forward.user_id.encode()
            headers = forward_headers(forward)
            futures.append(
                await send(
                    self.repartition_topic, key, forward.value, forward.partition, None, headers
                )
            )
        for update in updates:
            value = update.model_dump_json().encode()
            futures.append(
                await send(self.updates_topic, update.user_id.encode(), value, None, None, None)
            )
        await asyncio.gather(*futures)

    # -- timers and the rebalance hook ------------------------------------------------------

    async def flush_when_due(self) -> None:
        """The flush timer: a window older than the interval is flushed between batches."""
        due = self.window.events and self.window.age() >= self.flush_interval
        if due and not self._lock.locked():
            async with self._lock:
                await self.flush_window()

    async def observe_lag(self) -> None:
        """The lag gauge: each assigned partition's high water minus what was acknowledged."""
        consumer = self.app.consumer
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            if high is None or tp not in self.window.acked:
                continue
            lag = max(0, high - self.window.acked[tp])
            self.metrics.lag.labels(topic=tp.topic, partition=str(tp.partition)).set(lag)

    def drop_pending(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        """On revocation: another worker may own these users from now on. What is pending
        is dropped (its events come again to their owner) and the cache is emptied before
        the next fold."""
        self.window.revoked = True
        self.core.cache.invalidate()


def _batches(stream: StreamT[Any], settings: Settings) -> AsyncIterator[Sequence[Any]]:
    """Lists of up to `batch_size` events (records with their message), acknowledged by
    us only; faust types `noack_take` on its Stream class alone, and as yielding values."""
    events = cast("Stream[Any]", stream)
    return events.noack_take(settings.batch_size, within=settings.batch_wait_ms / 1000)


def _observe_fold(
    metrics: WorkerMetrics, records: Sequence[RawRecord], outcome: BatchOutcome, core: BatchCore
) -> None:
    for record in records:
        metrics.consumed.labels(topic=record.origin.topic or "unknown").inc()
    metrics.observe_rejects(outcome.rejects)
    metrics.duplicates.inc(outcome.duplicates)
    metrics.erased.inc(outcome.erased)
    metrics.users_touched.inc(outcome.users)
    metrics.batches.inc()
    metrics.encoder_texts.inc(outcome.texts_encoded)
    metrics.encoder_seconds.inc(outcome.encode_seconds)
    hit_rate = getattr(core.encoder, "hit_rate", None)
    if isinstance(hit_rate, float):
        metrics.encoder_cache_hit_ratio.set(hit_rate)
    metrics.profile_cache.set(len(core.cache))


def _origin(message: Any, settings: Settings) -> Provenance:
    """Where a Kafka message came from; the source ("topic:partition") keys the applied
    high-water offsets, the topic is named without the configured prefix. A forwarded event
    (the repartition topic) names the input topic it first arrived on."""
    prefix = settings.topic_prefix
    topic = str(message.topic)
    source = f"{topic}:{message.partition}"
    if topic != settings.topic(settings.repartition_topic):
        named = topic[len(prefix) :] if prefix and topic.startswith(prefix) else topic
        return Provenance(source, message.offset, named, message.partition, message.key)
    first = first_arrival(_headers(message))  # forward_headers wrote it
    # Validated where it first arrived (type against topic included); its topic,
    # partition and offset here are the repartition topic's, where a DLQ record points.
    return Provenance(
        source=source,
        offset=message.offset,
        topic=settings.repartition_topic,
        partition=message.partition,
        key=message.key,
        routed=True,
        first_source=first.source,
        first_offset=first.offset,
    )


def _headers(message: Any) -> list[tuple[str, bytes]]:
    headers = message.headers or ()
    if isinstance(headers, dict):
        return list(headers.items())
    return list(headers)


PARTITIONS_SETTING = "input_partitions"


def check_partition_count(store: ProfileStore, settings: Settings, partitions: int) -> None:
    """The input topics' partition count is fixed per store: the first worker keeps it
    there, and a worker that finds another count refuses to start. Users' owning
    partitions (and so their fences) follow the count: after a change, a new owner's fence
    could hand out timestamps below the old owner's last writes, and Cassandra would keep
    the old cells over the new ones while the writes reported success."""
    kept = store.keep_setting(PARTITIONS_SETTING, str(partitions))
    if kept != str(partitions):
        raise ConfigurationError(
            f"the input topics on {settings.brokers} have {partitions} partitions, but the"
            f" profiles in {settings.store_url} were written for {kept}: a user's partition"
            " (and fence) depends on the count. Keep the topics at that count, or rebuild"
            " the profiles into a new store from the events"
        )


def run_worker(settings: Settings, core: BatchCore, loglevel: str) -> None:
    """Run until stopped (SIGTERM/SIGINT); the store is closed on the way out."""
    import faust

    metrics = WorkerMetrics()
    app = StreamWorker(settings, core, metrics).app
    if settings.metrics_port is not None:
        port = metrics.serve(settings.metrics_host, settings.metrics_port)
        log.info("metrics on http://%s:%d/metrics", settings.metrics_host, port)
    log.info(
        "worker: group %s, brokers %s, topics %s, store %s, encoder %s",
        settings.consumer_group,
        settings.brokers,
        ", ".join(settings.topic(t) for t in INPUT_TOPICS),
        settings.store_url,
        core.encoder.model_id,
    )
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    try:
        worker.execute_from_commandline()
    finally:
        metrics.close()
        core.store.close()
