"""`interest-stream bench pipeline`: end-to-end figures measured side by side in one run.

Against a running Kafka and Cassandra (the local ones by default), on a generated workload
in fresh, uniquely named topics and keyspace (dropped afterwards):

1. encoder alone: the real encoder over the workload's unique texts (cold cache);
2. the whole pipeline with the real encoder: publish, then a real worker process drains it;
3. the pipeline with encoding excluded (vectors precomputed) and the ceiling it is compared
   with: a raw loop of aiokafka consume + cassandra-driver concurrent writes of the same
   rows the worker stores per touched user per batch (state, profile row, per-domain rows,
   from a profile of the workload's size), plain: no read, fold, fence or ANN copy;
4. freshness: click events offered at a fixed rate, p50/p99 from event time to the
   publication of the profile update that contains it;
5. Cassandra writes per event and per touched user per batch (from the worker's log).

Throughputs are reported as ratios because absolute numbers on a shared 2-core machine
move from run to run; all runs use the same workload and settings.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from interest_stream.encoders.base import Encoder
from interest_stream.schemas.events import TOPIC_OF_TYPE
from interest_stream.streams.demo import generate
from interest_stream.streams.errors import InterestStreamError
from interest_stream.streams.lab.worker_process import WorkerProcess, security_env
from interest_stream.streams.settings import Settings

if TYPE_CHECKING:
    from interest_stream.store.cassandra import CassandraStore
    from interest_stream.streams.model.profile import UserProfile


def _progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


_EVENT_COUNT = re.compile(rb'"event_count":\s*(\d+)')


class _UpdateWatcher:
    """Follows profile-updates in a thread; records arrival times and per-user counts.

    It shares the machine with the pipeline it measures, so it does as little as it can:
    the user from the key, the event count by a regex instead of parsing the whole update
    (two 384-float vectors), no CRC checks. Parsing each update in full took about a fifth
    of the 2-core machine away from the worker.
    """

    def __init__(self, settings: Settings, topic: str) -> None:
        from kafka import KafkaConsumer

        self._consumer = KafkaConsumer(
            topic,
            bootstrap_servers=settings.brokers,
            **_security(settings),
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
            consumer_timeout_ms=500,
            check_crcs=False,
        )
        self.first_arrival: float | None = None
        self.counts: dict[str, int] = {}
        self.updates: list[tuple[str, int, float]] = []  # user, event_count, publish time (s)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for message in self._consumer:
                if message.value is None or message.key is None:
                    continue
                found = _EVENT_COUNT.search(message.value)
                if found is None:
                    raise InterestStreamError(f"profile update without event_count: {message!r}")
                user_id, event_count = message.key.decode(), int(found.group(1))
                if self.first_arrival is None:
                    self.first_arrival = time.monotonic()
                self.counts[user_id] = event_count
                self.updates.append((user_id, event_count, message.timestamp / 1000.0))
                if self._stop.is_set():
                    break

    def total(self) -> int:
        return sum(self.counts.values())

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._consumer.close()


def _wait(
    condition: Callable[[], bool],
    timeout_s: float,
    what: str,
    tail: Callable[[], str],
    alive: Callable[[], bool] = lambda: True,
) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if not alive():
            raise InterestStreamError(f"the worker died while waiting for {what}\n{tail()}")
        if time.monotonic() > deadline:
            raise InterestStreamError(f"benchmark timed out waiting for {what}\n{tail()}")
        time.sleep(0.05)


def _security(settings: Settings) -> dict[str, Any]:
    """kafka-python's TLS and SASL options for the configured cluster (the product's own)."""
    from interest_stream.streams.kafka.clients import security_options

    return security_options(settings)


def _aiokafka_security(settings: Settings) -> dict[str, Any]:
    """The same for aiokafka, which takes an SSL context rather than a CA file."""
    from interest_stream.streams.kafka.clients import ssl_context

    options = {k: v for k, v in _security(settings).items() if k != "ssl_cafile"}
    if settings.kafka_security_protocol.endswith("SSL"):
        options["ssl_context"] = ssl_context(settings)
    return options


def _publish(settings: Settings, prefix: str, events: Sequence[dict[str, Any]]) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=settings.brokers, acks="all", linger_ms=10, **_security(settings)
    )
    for event in events:
        producer.send(
            prefix + TOPIC_OF_TYPE[event["type"]],
            key=event["user_id"].encode(),
            value=json.dumps(event).encode(),
        )
    producer.flush(timeout=120)
    producer.close()


class _Scratch:
    """Fresh topics and keyspace for one measurement, removed afterwards."""

    def __init__(self, settings: Settings, tag: str) -> None:
        from interest_stream.store import open_store
        from interest_stream.store.cassandra import CassandraTarget, parse_url
        from interest_stream.streams.admin import init_kafka

        suffix = uuid.uuid4().hex[:8]
        self.prefix = f"bench-{tag}-{suffix}-"
        self.keyspace = f"bench_{tag}_{suffix}"
        contact = parse_url(settings.store_url)
        self.target = CassandraTarget(contact.hosts, contact.port, self.keyspace)
        self.store_url = f"cassandra://{self.target}"
        # A copy, not load_settings(): credentials given in `settings` (not the environment)
        # must reach the scratch clients too.
        self.settings = settings.model_copy(
            update={"topic_prefix": self.prefix, "store_url": self.store_url}
        )
        init_kafka(self.settings)
        open_store(
            self.store_url, cassandra=self.settings.cassandra_options(), create_schema=True
        ).close()

    def connect(self) -> tuple[Any, Any]:
        """A driver cluster and session on the scratch keyspace, configured as the store's."""
        from interest_stream.store.cassandra import connect

        return connect(self.target, self.settings.cassandra_options())

    def drop(self) -> None:
        from interest_stream.streams.admin import admin_client

        cluster, session = self.connect()
        try:
            session.execute(f"DROP KEYSPACE IF EXISTS {self.keyspace}")
        finally:
            cluster.shutdown()
        admin = admin_client(self.settings)
        try:
            names = [t for t in admin.list_topics() if t.startswith(self.prefix)]
            if names:
                admin.delete_topics(names)
        finally:
            admin.close()


def _drain(
    settings: Settings,
    events: list[dict[str, Any]],
    expected: int,
    encoder: str,
    tag: str,
    workdir: Path,
) -> dict[str, Any]:
    """Publish everything, start a worker, time from its first update to the last event."""
    scratch = _Scratch(settings, tag)
    try:
        _publish(settings, scratch.prefix, events)
        watcher = _UpdateWatcher(settings, scratch.prefix + settings.updates_topic)
        worker = WorkerProcess(
            bootstrap=settings.brokers,
            prefix=scratch.prefix,
            store_url=scratch.store_url,
            log_path=workdir / f"worker-{tag}.log",
            batch_size=settings.batch_size,
            batch_wait_ms=settings.batch_wait_ms,
            encoder=encoder,
            env=security_env(settings),
        ).start()
        try:
            _wait(
                lambda: watcher.first_arrival is not None,
                300,
                "the first update",
                worker.log_tail,
                worker.alive,
            )
            _wait(
                lambda: watcher.total() >= expected,
                1800,
                f"{expected} events applied",
                worker.log_tail,
                worker.alive,
            )
            finished = time.monotonic()
        finally:
            worker.stop()
            watcher.close()
        assert watcher.first_arrival is not None
        seconds = finished - watcher.first_arrival
        totals = worker.totals()
        # The first batch's work happened before the first update arrived: leave it out.
        first_batch = _first_batch(settings.batch_size, expected)
        return {
            "events": expected,
            "seconds": round(seconds, 3),
            "events_per_s": round((expected - first_batch) / seconds, 1),
            "batches": totals.batches,
            "writes": totals.writes,
            "touched_user_batches": totals.users,
            "lost_fences": totals.lost_fences,
        }
    finally:
        scratch.drop()


def _first_batch(batch_size: int, events: int) -> int:
    """Events to leave out of a rate timed from the first result: one batch, unless the
    whole workload fits in one (then the time covers all of it)."""
    return batch_size if events > batch_size else 0


def _raw_loop(
    settings: Settings,
    events: list[dict[str, Any]],
    tag: str,
    write: Callable[[CassandraStore, list[str]], int],
) -> dict[str, Any]:
    """aiokafka consume + concurrent cassandra-driver writes per batch of the touched
    users (`write` stores them and says for how many users), nothing else."""
    from aiokafka import AIOKafkaConsumer

    from interest_stream.store.cassandra import CassandraStore

    scratch = _Scratch(settings, tag)
    store = CassandraStore.from_url(scratch.store_url, options=scratch.settings.cassandra_options())
    try:
        _publish(settings, scratch.prefix, events)

        async def consume() -> tuple[float, int]:
            consumer = AIOKafkaConsumer(
                *(scratch.prefix + t for t in TOPIC_OF_TYPE.values()),
                bootstrap_servers=settings.brokers,
                group_id=f"{scratch.prefix}raw",
                auto_offset_reset="earliest",
                enable_auto_commit=False,
                **_aiokafka_security(settings),
            )
            await consumer.start()
            seen = writes = 0
            started: float | None = None
            buffered: dict[Any, deque[Any]] = defaultdict(deque)
            try:
                while seen < len(events):
                    for partition, fetched in (await consumer.getmany(timeout_ms=50)).items():
                        buffered[partition].extend(fetched)
                    # A batch takes records round-robin across partitions, as the worker's
                    # stream does: a batch from one partition would touch fewer users.
                    records: list[Any] = []
                    while len(records) < settings.batch_size and any(buffered.values()):
                        for queue in buffered.values():
                            if queue and len(records) < settings.batch_size:
                                records.append(queue.popleft())
                    if not records:
                        continue
                    started = started or time.monotonic()
                    users = sorted({json.loads(r.value)["user_id"] for r in records})
                    writes += write(store, users)
                    await consumer.commit()
                    seen += len(records)
            finally:
                await consumer.stop()
            return time.monotonic() - (started or time.monotonic()), writes

        seconds, writes = asyncio.run(consume())
        first_batch = _first_batch(settings.batch_size, len(events))
        return {
            "events": len(events),
            "seconds": round(seconds, 3),
            "events_per_s": round((len(events) - first_batch) / seconds, 1),
            "writes": writes,
        }
    finally:
        store.close()
        scratch.drop()


def write_unfenced(store: CassandraStore, profiles: Sequence[UserProfile]) -> int:
    """The rows the store's `apply` writes for each profile (state, profile row, per-domain
    rows) as plain unconditional writes: no fence, no old-state delete, no ANN copy. The
    ceiling writes the same rows without the logic; returns the number of requests."""
    import uuid

    from interest_stream.store.base import ProfileWrite

    statements = []
    for profile in profiles:
        write, write_id = ProfileWrite(profile, 0), uuid.uuid4()
        statements.append(store._state_write(write, write_id))
        statements.append(store._profile_write(write, write_id, fenced=False))
        domains = store._domain_writes(profile)
        if domains is not None:
            statements.append(domains)
    for result in store._requests.run(statements):
        if isinstance(result, BaseException):
            raise InterestStreamError(f"unfenced benchmark write failed: {result!r}")
    return len(statements)


def _raw_ceiling(
    settings: Settings, events: list[dict[str, Any]], typical: UserProfile
) -> dict[str, Any]:
    """The ceiling: per touched user the rows the worker stores (state, profile row,
    per-domain rows, the same sizes), written plainly: no read, fold, fence or ANN copy."""

    def same_rows(store: CassandraStore, users: list[str]) -> int:
        write_unfenced(store, [replace(typical, user_id=user) for user in users])
        return len(users)

    return _raw_loop(settings, events, "raw", same_rows)


def _freshness(
    settings: Settings, rate: float, seconds: float, workdir: Path, encoder: str
) -> dict[str, Any]:
    """Offer click events at `rate`/s; latency from event time to its update's publication."""
    from kafka import KafkaProducer

    scratch = _Scratch(settings, "fresh")
    workload = generate(users=200, events_per_user=max(2, int(rate * seconds / 200) + 2), seed=21)
    clicks = [e for e in workload.events if e["type"] == "click"][: int(rate * seconds)]
    try:
        watcher = _UpdateWatcher(settings, scratch.prefix + settings.updates_topic)
        worker = WorkerProcess(
            bootstrap=settings.brokers,
            prefix=scratch.prefix,
            store_url=scratch.store_url,
            log_path=workdir / "worker-freshness.log",
            batch_size=settings.batch_size,
            batch_wait_ms=settings.batch_wait_ms,
            encoder=encoder,
            env=security_env(settings),
        ).start()
        producer = KafkaProducer(
            bootstrap_servers=settings.brokers, acks=1, linger_ms=0, **_security(settings)
        )
        try:
            warm = {**clicks[0], "event_id": "warm-up", "ts": int(time.time() * 1000)}
            producer.send(
                scratch.prefix + "clicks",
                key=warm["user_id"].encode(),
                value=json.dumps(warm).encode(),
            )
            producer.flush()
            _wait(
                lambda: watcher.total() >= 1,
                300,
                "the warm-up update",
                worker.log_tail,
                worker.alive,
            )
            sent: dict[str, list[float]] = defaultdict(list)
            started = time.time()
            for i, event in enumerate(clicks):
                due = started + i / rate
                delay = due - time.time()
                if delay > 0:
                    time.sleep(delay)
                now = time.time()
                event = {**event, "ts": int(now * 1000)}
                sent[event["user_id"]].append(now)
                producer.send(
                    scratch.prefix + "clicks",
                    key=event["user_id"].encode(),
                    value=json.dumps(event).encode(),
                )
            producer.flush()
            offered = len(clicks) / (time.time() - started)
            expected = len(clicks) + 1
            _wait(
                lambda: watcher.total() >= expected,
                300,
                "all offered events",
                worker.log_tail,
                worker.alive,
            )
        finally:
            producer.close()
            worker.stop()
            watcher.close()
        # Per user, clicks are applied in offset order: the k-th click is in the first update
        # whose event_count reaches k (+1 for the warm-up event of that user).
        latencies = []
        by_user: dict[str, list[tuple[int, float]]] = defaultdict(list)
        for user, count, published in watcher.updates:
            by_user[user].append((count, published))
        for user, times in sent.items():
            base = 1 if user == warm["user_id"] else 0
            updates = sorted(by_user[user])
            for k, sent_at in enumerate(times, start=1 + base):
                published = next(p for c, p in updates if c >= k)
                latencies.append(published - sent_at)
        values = np.array(latencies)
        return {
            "offered_events_per_s": round(offered, 1),
            "events": len(latencies),
            "p50_ms": round(float(np.percentile(values, 50)) * 1000, 1),
            "p99_ms": round(float(np.percentile(values, 99)) * 1000, 1),
            "max_ms": round(float(values.max()) * 1000, 1),
        }
    finally:
        scratch.drop()


def bench_pipeline(
    settings: Settings,
    encoder: Encoder,
    *,
    users: int = 200,
    events_per_user: int = 50,
    freshness_rate: float = 500.0,
    freshness_seconds: float = 20.0,
) -> dict[str, Any]:
    """Run every measurement and return the figures and ratios."""
    from interest_stream.streams.lab.precomputed import save_vectors
    from interest_stream.streams.model.horizons import InterestParams
    from interest_stream.streams.model.profile import UserProfile, WeightedEvent, fold_events
    from interest_stream.streams.model.sentiment import NEGATIVE_ANCHORS, POSITIVE_ANCHORS

    workload = generate(users=users, events_per_user=events_per_user, seed=17)
    events = workload.events
    texts = sorted({e["text"] for e in events})
    workdir = Path(tempfile.mkdtemp(prefix="interest-stream-bench-"))
    results: dict[str, Any] = {
        "events": len(events),
        "users": users,
        "unique_texts": len(texts),
        "batch_size": settings.batch_size,
        "encoder": encoder.model_id,
        "workdir": str(workdir),
    }

    _progress(f"encoder alone: {len(texts)} unique texts")
    started = time.perf_counter()
    vectors = np.concatenate(
        [
            encoder.encode(texts[i : i + settings.batch_size])
            for i in range(0, len(texts), settings.batch_size)
        ]
    )
    encode_seconds = time.perf_counter() - started
    results["encoder_alone"] = {
        "seconds": round(encode_seconds, 3),
        "texts_per_s": round(len(texts) / encode_seconds, 1),
        "events_per_s": round(len(events) / encode_seconds, 1),
    }

    _progress("pipeline with the real encoder")
    real = _drain(settings, events, len(events), "onnx", "real", workdir)
    results["pipeline_real_encoder"] = real

    vectors_path = workdir / "vectors.npz"
    # The sentiment anchors are encoded by the worker too (for unrated reviews).
    save_vectors(vectors_path, [*texts, *POSITIVE_ANCHORS, *NEGATIVE_ANCHORS], encoder)
    _progress("pipeline with precomputed vectors (encoding excluded)")
    no_encode = _drain(
        settings, events, len(events), f"precomputed:{vectors_path}", "noenc", workdir
    )
    results["pipeline_encoding_excluded"] = no_encode

    _progress("raw loop ceiling: aiokafka + cassandra-driver, the same rows as the worker")
    # A profile as large as the workload's: one user's events, with their domains.
    row_of = {text: i for i, text in enumerate(texts)}
    sample = [
        WeightedEvent(
            f"s{i}", 1.7e9 + i, 1.0, e["text"], vectors[row_of[e["text"]]], domain=e.get("domain")
        )
        for i, e in enumerate(e for e in events if e["user_id"] == events[0]["user_id"])
    ]
    typical = fold_events(
        UserProfile.new("u", encoder.model_id, encoder.dim), sample, InterestParams(), updated_at=0
    ).profile
    results["raw_ceiling"] = _raw_ceiling(settings, events, typical)

    _progress(f"freshness at {freshness_rate:.0f} events/s for {freshness_seconds:.0f} s")
    results["freshness"] = _freshness(settings, freshness_rate, freshness_seconds, workdir, "onnx")

    results["ratios"] = {
        "pipeline_vs_encoder_alone": round(
            real["events_per_s"] / results["encoder_alone"]["events_per_s"], 3
        ),
        "encoding_excluded_vs_raw_ceiling": round(
            no_encode["events_per_s"] / results["raw_ceiling"]["events_per_s"], 3
        ),
        "cassandra_writes_per_event": round(real["writes"] / len(events), 4),
        "writes_per_touched_user_per_batch": round(
            real["writes"] / max(real["touched_user_batches"], 1), 4
        ),
    }
    return results


def print_report(results: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    table = Table(
        title=f"pipeline benchmark: {results['events']:,} events, "
        f"{results['users']} users, {results['unique_texts']:,} unique texts, "
        f"batch {results['batch_size']}"
    )
    table.add_column("measurement")
    table.add_column("events/s", justify="right")
    table.add_column("seconds", justify="right")
    table.add_column("notes")
    enc = results["encoder_alone"]
    table.add_row(
        "encoder alone (unique texts)",
        f"{enc['events_per_s']:,.0f}",
        f"{enc['seconds']:.1f}",
        f"{enc['texts_per_s']:,.0f} texts/s",
    )
    for key, label in (
        ("pipeline_real_encoder", "pipeline, real encoder"),
        ("pipeline_encoding_excluded", "pipeline, encoding excluded"),
    ):
        row = results[key]
        table.add_row(
            label,
            f"{row['events_per_s']:,.0f}",
            f"{row['seconds']:.1f}",
            f"{row['writes']:,} writes, {row['lost_fences']} lost fences",
        )
    raw = results["raw_ceiling"]
    table.add_row(
        "raw loop: same rows, plain writes",
        f"{raw['events_per_s']:,.0f}",
        f"{raw['seconds']:.1f}",
        f"{raw['writes']:,} user writes",
    )
    console.print(table)
    ratios = results["ratios"]
    fresh = results["freshness"]
    console.print(
        f"pipeline / encoder alone: [bold]{ratios['pipeline_vs_encoder_alone']:.2f}x[/bold]"
        f" (target >= 0.8)\n"
        f"encoding excluded / raw ceiling: "
        f"[bold]{ratios['encoding_excluded_vs_raw_ceiling']:.2f}x[/bold] (target >= 0.5)\n"
        f"Cassandra writes per event: {ratios['cassandra_writes_per_event']:.3f}; per touched "
        f"user per batch: {ratios['writes_per_touched_user_per_batch']:.2f} (target <= 1)\n"
        f"freshness at {fresh['offered_events_per_s']:.0f} events/s offered: "
        f"p50 {fresh['p50_ms']:.0f} ms, p99 [bold]{fresh['p99_ms']:.0f} ms[/bold] "
        f"(target < 1000), max {fresh['max_ms']:.0f} ms"
    )
