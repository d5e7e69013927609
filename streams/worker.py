"""The streaming worker: the only module that knows Faust.

One agent consumes the co-partitioned topics clicks, reviews and queries with raw
serializers (so decoding and validation happen in our code and bad bytes reach the DLQ
intact), takes batches with `noack_take`, runs the same `BatchCore` as the embedded mode in
a worker thread, publishes the DLQ records and profile updates, and only then acks the
batch's offsets. Redelivered events are skipped by the per-partition high-water offsets
stored with each profile; racing workers are fenced by the store's version check.
Transient store or broker failures are retried with capped backoff; anything else crashes
the worker (a `CrashingSupervisor`: a poisoned agent is not silently restarted).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from interest_stream.schemas.events import INPUT_TOPICS
from interest_stream.schemas.records import Provenance, RawRecord, Rejection
from interest_stream.streams.core.batch import BatchCore, BatchOutcome
from interest_stream.streams.core.items import apply_items
from interest_stream.streams.errors import BrokerError, MissingExtraError, StoreError
from interest_stream.streams.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_BACKOFF_S = 30.0


def dlq_headers(rejection: Rejection) -> list[tuple[str, bytes]]:
    """Where a rejected message came from and why, as Kafka headers (value stays original)."""
    return [
        ("reason", rejection.reason.encode()),
        ("source.topic", (rejection.origin.topic or "").encode()),
        ("source.partition", str(rejection.origin.partition).encode()),
        ("source.offset", str(rejection.origin.offset).encode()),
    ]


def _credentials(settings: Settings) -> Any:
    import faust

    if settings.kafka_security_protocol == "PLAINTEXT":
        return None
    context = None
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(
            cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
        )
    if settings.kafka_security_protocol == "SSL":
        return faust.SSLCredentials(context)
    password = settings.kafka_password.get_secret_value() if settings.kafka_password else None
    return faust.SASLCredentials(
        username=settings.kafka_username,
        password=password,
        mechanism=settings.kafka_sasl_mechanism or "SCRAM-SHA-512",
        ssl_context=context,
    )


class Pipeline:
    """What the agent needs besides Faust: the core, its thread and the retry policy."""

    def __init__(self, core: BatchCore, settings: Settings) -> None:
        self.core = core
        self.settings = settings
        # One thread: batches are processed strictly one after another per worker, and the
        # event loop stays free for heartbeats while the encoder and the store work.
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch-core")
        self.batches = 0
        self.lost_fences = 0

    async def process(self, records: Sequence[RawRecord]) -> BatchOutcome:
        """Run the batch core, retrying transient store failures with capped backoff."""
        return await self.run(self.core.process, records)

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        """Run `work` on the batch thread, retrying transient store failures."""
        loop = asyncio.get_running_loop()
        delay = 0.5
        while True:
            try:
                return await loop.run_in_executor(self.executor, work, *args)
            except StoreError as exc:
                log.warning("store unavailable (%s); retrying batch in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF_S)


def retriable(exc: BaseException) -> bool:
    """Whether a failed send may succeed if tried again: the broker said so (leader moving,
    not enough replicas, request timed out...) or it could not be reached in time. A record
    too large, a topic not allowed or a closed producer fail the same way every time."""
    from aiokafka.errors import KafkaError, KafkaTimeoutError

    if isinstance(exc, KafkaTimeoutError | asyncio.TimeoutError):
        return True
    return isinstance(exc, KafkaError) and bool(exc.retriable)


async def _retrying(label: str, send: Callable[[], Awaitable[Any]]) -> None:
    """Await a publish, retrying retriable broker errors with capped backoff (at-least-once).

    Anything else is raised as a BrokerError that names the failure: it reaches Faust's
    supervisor, which stops the worker (CrashingSupervisor) with the batch unacknowledged,
    rather than retrying forever what cannot succeed.
    """
    delay = 0.5
    while True:
        try:
            await send()
            return
        except Exception as exc:
            if not retriable(exc):
                log.error("%s failed and cannot succeed by retrying: %r", label, exc)
                raise BrokerError(f"{label} failed permanently: {exc!r}") from exc
            log.warning("%s failed (%r); retrying in %.1f s", label, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF_S)


def create_app(settings: Settings, core: BatchCore) -> Any:
    """The Faust app with its agents (events, items), ready for `faust.Worker`."""
    try:
        import faust
        from mode import CrashingSupervisor
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise MissingExtraError("faust-streaming", "kafka") from exc

    catalog = core.items
    encoder = core.encoder
    pipeline = Pipeline(core, settings)
    app = faust.App(
        settings.consumer_group,
        broker=[f"kafka://{b.strip()}" for b in settings.brokers.split(",")],
        broker_credentials=_credentials(settings),
        value_serializer="raw",
        key_serializer="raw",
        store="memory://",
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
        stream_wait_empty=True,
        worker_redirect_stdouts=False,
    )
    inputs = app.topic(
        *(settings.topic(name) for name in INPUT_TOPICS),
        key_type=bytes,
        value_type=bytes,
        value_serializer="raw",
        key_serializer="raw",
    )
    items = app.topic(
        settings.topic(settings.items_topic),
        key_type=bytes,
        value_type=bytes,
        value_serializer="raw",
        key_serializer="raw",
        allow_empty=True,  # a null value erases the item
    )
    updates_topic = settings.topic(settings.updates_topic)
    dlq_topic = settings.topic(settings.dlq_topic)

    async def send_rejects(rejections: Sequence[Rejection]) -> list[Awaitable[Any]]:
        return [
            await app.producer.send(dlq_topic, r.origin.key, r.raw, None, None, dlq_headers(r))
            for r in rejections
        ]

    async def _send_confirmed(rejections: Sequence[Rejection]) -> None:
        await asyncio.gather(*await send_rejects(rejections))

    async def publish(outcome: BatchOutcome) -> None:
        """DLQ records and profile updates of one batch, confirmed by the broker."""
        futures = await send_rejects(outcome.rejects)
        for update in (*outcome.updates, *outcome.reannounced):
            futures.append(
                await app.producer.send(
                    updates_topic,
                    update.user_id.encode(),
                    update.model_dump_json().encode(),
                    None,
                    None,
                    None,
                )
            )
        await asyncio.gather(*futures)

    @app.on_partitions_revoked.connect
    def forget_profiles(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        # Users of revoked partitions may be written by another worker from now on: the
        # cached profiles would only lose their fences. Partitions kept re-read once.
        core.cache.invalidate()

    @app.agent(inputs, supervisor_strategy=CrashingSupervisor, concurrency=1)
    async def fold_events(stream: Any) -> None:
        async for batch in stream.noack_take(
            settings.batch_size, within=settings.batch_wait_ms / 1000
        ):
            started = time.perf_counter()
            records = [
                RawRecord(event.message.value or b"", _origin(event.message, settings))
                for event in batch
            ]
            outcome = await pipeline.process(records)
            await _retrying("publish", functools.partial(publish, outcome))
            # Acks only now: the profiles and their announcements are durable.
            for event in batch:
                await stream.ack(event)
            pipeline.batches += 1
            pipeline.lost_fences += outcome.lost_fences
            log.info(
                "batch %d: %d records, %d applied, %d duplicates, %d to DLQ, %d users, "
                "%d writes, %d lost fences, %d re-announced, %d texts encoded in %.3f s, "
                "%d profiles cached, read %.3f s, fold %.3f s, write %.3f s, total %.3f s",
                pipeline.batches,
                len(records),
                outcome.applied,
                outcome.duplicates,
                len(outcome.rejects),
                outcome.users,
                outcome.writes,
                outcome.lost_fences,
                len(outcome.reannounced),
                outcome.texts_encoded,
                outcome.encode_seconds,
                outcome.cached_reads,
                outcome.read_seconds,
                outcome.fold_seconds,
                outcome.write_seconds,
                time.perf_counter() - started,
            )

    if catalog is not None:

        @app.agent(items, supervisor_strategy=CrashingSupervisor, concurrency=1)
        async def catalogue_items(stream: Any) -> None:
            async for batch in stream.noack_take(
                settings.batch_size, within=settings.batch_wait_ms / 1000
            ):
                entries = [
                    (
                        RawRecord(event.message.value or b"", _origin(event.message, settings)),
                        event.message.value is None,
                    )
                    for event in batch
                ]
                outcome = await pipeline.run(apply_items, entries, encoder, catalog)
                await _retrying("publish", functools.partial(_send_confirmed, outcome.rejects))
                for event in batch:
                    await stream.ack(event)
                log.info(
                    "items: %d stored, %d erased, %d to DLQ",
                    outcome.stored,
                    outcome.erased,
                    len(outcome.rejects),
                )

    return app


def _origin(message: Any, settings: Settings) -> Provenance:
    """Where a Kafka message came from; the source ("topic:partition") keys the applied
    high-water offsets, the topic is named without the configured prefix."""
    prefix = settings.topic_prefix
    topic = str(message.topic)
    return Provenance(
        source=f"{topic}:{message.partition}",
        offset=message.offset,
        topic=topic[len(prefix) :] if prefix and topic.startswith(prefix) else topic,
        partition=message.partition,
        key=message.key,
    )


def run_worker(settings: Settings, core: BatchCore, loglevel: str) -> None:
    """Run until stopped (SIGTERM/SIGINT); the store is closed on the way out."""
    import faust

    app = create_app(settings, core)
    encoder, store = core.encoder, core.store
    log.info(
        "worker: group %s, brokers %s, topics %s, store %s, encoder %s",
        settings.consumer_group,
        settings.brokers,
        ", ".join(settings.topic(t) for t in INPUT_TOPICS),
        settings.store_url,
        encoder.model_id,
    )
    worker = faust.Worker(app, loglevel=loglevel, quiet=True)
    try:
        worker.execute_from_commandline()
    finally:
        store.close()
