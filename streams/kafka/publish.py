"""Publishing events to Kafka the way the worker expects them: `interest-stream publish`.

Every line is validated with the worker's own `parse_event` before it is sent, so a bad
line is reported (file:line: reason) and never reaches a topic; a good line is sent as the
original bytes, keyed by its user id (the worker's co-partitioning and dedup depend on the
key) to the topic of its type (clicks, reviews, queries). `publish_events` is the logic,
with the sending function injected (tests pass a list's append); `KafkaSender` is the real
one: batched, gzip-compressed (no native library needed), acks from all replicas, and any
delivery failure surfaces at `flush` as a `BrokerError` rather than being dropped.
`--rate` paces sends for demos and load tests.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from interest_stream.schemas.events import TOPIC_OF_TYPE, ValidationRules, parse_event, parse_item
from interest_stream.schemas.records import RawRecord, Rejection
from interest_stream.streams.errors import BrokerError, ConfigurationError
from interest_stream.streams.kafka.clients import (
    make_consumer,
    make_producer,
    require_topics,
    unreachable,
)
from interest_stream.streams.settings import Settings

SendFunction = Callable[[str, bytes, bytes], object]
"""send(topic, key, value): hands one message to the producer (asynchronously is fine)."""

FIRST_REJECTS = 10
PROGRESS_EVERY = 256


@dataclass(frozen=True, slots=True)
class OutgoingEvent:
    """A validated event ready to send: where to, under which key, and its original bytes."""

    topic: str
    key: bytes
    value: bytes


def route_event(
    record: RawRecord, *, now: float, rules: ValidationRules, topic_prefix: str = ""
) -> OutgoingEvent | Rejection:
    """Validate one line and pick its topic and key, or say why it cannot be sent."""
    parsed = parse_event(record.value, record.origin, now=now, rules=rules)
    if isinstance(parsed, Rejection):
        return parsed
    return OutgoingEvent(
        topic=f"{topic_prefix}{TOPIC_OF_TYPE[parsed.type]}",
        key=parsed.user_id.encode(),
        value=record.value,
    )


def route_item(record: RawRecord, *, topic: str) -> OutgoingEvent | Rejection:
    """Validate one item-catalogue line; it goes to `topic` keyed by its item id."""
    parsed = parse_item(record.value, record.origin)
    if isinstance(parsed, Rejection):
        return parsed
    return OutgoingEvent(topic=topic, key=parsed.item_id.encode(), value=record.value)


def input_topics(topic_prefix: str = "") -> list[str]:
    """The topics `publish` may send to."""
    return [f"{topic_prefix}{topic}" for topic in TOPIC_OF_TYPE.values()]


@dataclass
class PublishSummary:
    """What one publish run did."""

    records: int = 0
    sent: Counter[str] = field(default_factory=Counter)
    rejected: int = 0
    reject_reasons: Counter[str] = field(default_factory=Counter)
    first_rejects: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def sent_total(self) -> int:
        return sum(self.sent.values())

    def reject(self, rejection: Rejection) -> None:
        self.rejected += 1
        self.reject_reasons[rejection.label()] += 1  # a bounded set of kinds
        if len(self.first_rejects) < FIRST_REJECTS:
            self.first_rejects.append(rejection.located())

    def report(self) -> dict[str, Any]:
        """The counters as JSON-ready data, with totals and the rate."""
        data = asdict(self)
        data.update(
            sent=self.sent_total,
            sent_per_topic=dict(sorted(self.sent.items())),
            reject_reasons=dict(self.reject_reasons.most_common()),
            seconds=round(self.seconds, 3),
            events_per_s=round(self.sent_total / self.seconds, 1) if self.seconds else None,
        )
        return data


def publish_events(
    records: Iterable[RawRecord],
    send: SendFunction,
    *,
    rules: ValidationRules,
    topic_prefix: str = "",
    items_topic: str | None = None,
    rate: float | None = None,
    flush: Callable[[], object] | None = None,
    on_progress: Callable[[int], None] | None = None,
    on_reject: Callable[[Rejection], object] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    wall_clock: Callable[[], float] = time.time,
) -> PublishSummary:
    """Validate, route and send every record; rejected ones are counted, never sent.

    With `items_topic` the records are item-catalogue lines (item_id, text, domain), sent
    to that topic keyed by item id; otherwise events, routed by type and keyed by user.

    `rate` (events/s) paces the sends: event n leaves no earlier than n/rate seconds after
    the start, so a slow moment is caught up rather than lost. `flush` runs before the clock
    stops, so the summary's events/s counts delivered messages, not buffered ones.
    """
    if rate is not None and rate <= 0:
        raise ConfigurationError(f"--rate must be positive, got {rate}")
    summary = PublishSummary()
    started = clock()
    unreported = 0
    # Paced runs are slow by request: report every event so the bar moves.
    report_every = 1 if rate is not None else PROGRESS_EVERY
    for record in records:
        summary.records += 1
        unreported += 1
        routed = (
            route_item(record, topic=items_topic)
            if items_topic is not None
            else route_event(record, now=wall_clock(), rules=rules, topic_prefix=topic_prefix)
        )
        if isinstance(routed, Rejection):
            summary.reject(routed)
            if on_reject is not None:
                on_reject(routed)
        else:
            if rate is not None:
                due = started + summary.sent_total / rate
                ahead = due - clock()
                if ahead > 0:
                    sleep(ahead)
            send(routed.topic, routed.key, routed.value)
            summary.sent[routed.topic] += 1
        if on_progress is not None and unreported >= report_every:
            on_progress(unreported)
            unreported = 0
    if flush is not None:
        flush()
    if on_progress is not None and unreported:
        on_progress(unreported)
    summary.seconds = clock() - started
    return summary


class KafkaSender:
    """Sends to Kafka with kafka-python; `flush` raises BrokerError if anything was lost.

    acks=all (and kafka-python 3's default idempotence) keep retries from losing, duplicating
    or reordering messages within a partition. A run that failed part-way may be published
    again: the worker skips events it applied recently by event id.
    """

    def __init__(
        self, settings: Settings, *, linger_ms: int = 20, compression_type: str = "gzip"
    ) -> None:
        self.settings = settings
        self._producer = make_producer(
            settings,
            acks="all",
            linger_ms=linger_ms,
            compression_type=compression_type,
            batch_size=256 * 1024,
            # Publishing to a topic that init did not create must fail, not create it
            # with the broker's default partition count.
            allow_auto_create_topics=False,
            max_block_ms=30_000,
        )
        self.failures = 0
        self.first_failure: BaseException | None = None

    def check_topics(self, topics: list[str]) -> None:
        consumer = make_consumer(self.settings, group_id=None, enable_auto_commit=False)
        try:
            require_topics(self.settings, consumer, topics)
        finally:
            consumer.close()

    def _failed(self, exc: BaseException) -> None:
        self.failures += 1
        if self.first_failure is None:
            self.first_failure = exc

    def send(self, topic: str, key: bytes, value: bytes) -> None:
        from kafka.errors import KafkaError

        try:
            future = self._producer.send(topic, key=key, value=value)
        except KafkaError as exc:
            raise unreachable(self.settings, exc) from exc
        future.add_errback(self._failed)

    def flush(self, timeout_s: float = 120.0) -> None:
        from kafka.errors import KafkaError

        try:
            self._producer.flush(timeout=timeout_s)
        except KafkaError as exc:
            raise unreachable(self.settings, exc) from exc
        if self.failures:
            raise BrokerError(
                f"{self.failures} events were not delivered to {self.settings.brokers}"
                f" (first: {self.first_failure}); publishing the file again is safe, the"
                " worker skips events it applied recently by event id"
            )

    def close(self) -> None:
        self._producer.close(timeout=10)

    def __enter__(self) -> KafkaSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
