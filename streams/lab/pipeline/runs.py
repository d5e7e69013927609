"""The throughput measurements of `bench pipeline`, each on its own scratch topics and
keyspace: the encoder alone, a real worker draining a published workload (with the real
encoder or with vectors saved beforehand), and the raw ceiling: aiokafka consume plus one
384-float vector row written per event, nothing else."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import defaultdict, deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from interest_stream.encoders.base import Encoder
from interest_stream.schemas.events import TOPIC_OF_TYPE
from interest_stream.store.cassandra.connect import Requests, parse_url
from interest_stream.store.cassandra.statements import vector_bytes
from interest_stream.streams.errors import InterestStreamError
from interest_stream.streams.lab.pipeline.cpu import SERVERS, CpuMeter
from interest_stream.streams.lab.pipeline.freshness import wait_for
from interest_stream.streams.lab.pipeline.scratch import Scratch
from interest_stream.streams.lab.worker_process import WorkerGroup, WorkerTotals
from interest_stream.streams.settings import Settings

DRAIN_TIMEOUT_S = 1800.0


def encoder_alone(
    encoder: Encoder, texts: Sequence[str], events: int, batch_size: int
) -> tuple[dict[str, Any], npt.NDArray[np.float32]]:
    """The encoder over the workload's distinct texts (cold cache), batch by batch."""
    started = time.perf_counter()
    vectors = np.concatenate(
        [encoder.encode(list(texts[i : i + batch_size])) for i in range(0, len(texts), batch_size)]
    )
    seconds = time.perf_counter() - started
    figures = {
        "seconds": round(seconds, 3),
        "texts_per_s": round(len(texts) / seconds, 1),
        "events_per_s": round(events / seconds, 1),
    }
    return figures, vectors.astype(np.float32)


def server_ports(settings: Settings, store_url: str) -> set[int]:
    """The ports of the Kafka brokers and Cassandra nodes a measurement uses."""
    ports = {int(b.rsplit(":", 1)[1]) for b in settings.brokers.split(",") if ":" in b}
    return ports | {parse_url(store_url).port}


def _per_thousand(cpu: Mapping[str, float], events: int) -> dict[str, float]:
    return {name: round(1000 * seconds / max(events, 1), 3) for name, seconds in cpu.items()}


def drain(
    settings: Settings,
    events: Sequence[dict[str, Any]],
    encoder_kind: str,
    tag: str,
    workdir: Path,
    env: Mapping[str, str] | None = None,
    workers: int = 1,
    settle_first: bool = False,
) -> dict[str, Any]:
    """Publish everything, start `workers` worker processes in one group, and time them
    from the first consumed event to the last applied (read from their metrics, polled
    down to 50 ms apart near the end: `_wait`): events/s, bytes and writes, CPU by
    process (the workers' summed).

    With `settle_first` the workers start first. Once the group is Stable with all of them
    they are paused (SIGSTOP), the workload is published, and the clock starts when they
    are resumed: each then drains a backlog on its own partitions, and neither the
    publish nor the group's forming is in the figures. Otherwise the process that joins
    first could drain a small workload alone before the others hold partitions."""
    scratch = Scratch(settings, tag)
    try:
        if not settle_first:
            scratch.publish(events)
        worker = WorkerGroup(
            [
                scratch.worker(workdir / f"worker-{tag}-{i}.log", encoder_kind, env)
                for i in range(workers)
            ]
        )
        try:
            worker.start()
            meter = CpuMeter(worker.pids, server_ports(settings, scratch.store_url))
            expected = len(events)
            publish_seconds = None
            if settle_first:
                _wait_for_group(settings, worker.members[0].group, workers, worker)
                publish_seconds = _publish_paused(scratch, events, worker)
            else:
                # The worker's start-up and group join are not the pipeline's work.
                _wait(worker, lambda t: t.records > 0, "the first consumed events")
            started = time.monotonic()
            meter.start()
            if settle_first:
                worker.resume()
            last = _wait(
                worker,
                lambda t: t.applied >= expected,
                f"{expected} events applied",
                left=lambda t: expected - t.applied,
            )
            seconds = time.monotonic() - started
            cpu = meter.stop()
            records_by_worker = worker.records_by_member()
        finally:
            worker.stop()
        # ANN copies are written in the background, some (the refresh interval) after the
        # last event was applied; the worker's graceful stop writes what is still pending.
        # The servers' CPU is counted through the stop, so those inserts are in the figures.
        after = meter.stop()
        cpu |= {name: seconds for name, seconds in after.items() if name in SERVERS}
        return {
            "events": expected,
            "workers": workers,
            "records_by_worker": records_by_worker,
            "publish_seconds": publish_seconds,
            "seconds": round(seconds, 3),
            "events_per_s": round(expected / seconds, 1) if seconds > 0 else None,
            "applied": last.applied,
            "duplicates": last.duplicates,
            "flushes": last.flushes,
            "batches": last.batches,
            "writes": last.writes,
            "touched_user_batches": last.users,
            "lost_fences": last.lost_fences,
            "bytes_written": last.bytes_written,
            "bytes_per_event": round(last.bytes_written / max(last.applied, 1), 1),
            "writes_per_event": round(last.writes / max(last.applied, 1), 4),
            "cpu_s_per_1000_events": _per_thousand(cpu, expected),
        }
    finally:
        scratch.drop()


def _publish_paused(
    scratch: Scratch, events: Sequence[dict[str, Any]], workers: WorkerGroup
) -> float:
    """Publish while the workers are paused; refuses when the pause outlasted their group
    session (they would have been dropped from the group, and the run would time a
    rebalance). Returns the publish's seconds."""
    workers.pause()
    started = time.monotonic()
    scratch.publish(events)
    seconds = time.monotonic() - started
    limit = 0.8 * scratch.settings.kafka_session_timeout_s
    if seconds > limit:
        raise InterestStreamError(
            f"publishing took {seconds:.1f} s while the workers were paused, longer than"
            f" {limit:.1f} s (0.8 of the group session): use a smaller --scale"
        )
    return round(seconds, 3)


def _wait_for_group(settings: Settings, group: str, members: int, workers: WorkerGroup) -> None:
    """Until the consumer group is Stable (assignment done) with `members` members."""
    from kafka.errors import KafkaError

    from interest_stream.streams.admin import admin_client

    # Faust's members carry its own assignor's metadata, which kafka-python's describe
    # cannot decode: it logs a warning with every member's raw bytes at each poll. The
    # state and the member count are all this needs.
    groups_log = logging.getLogger("kafka.admin._groups")
    level = groups_log.level
    groups_log.setLevel(logging.ERROR)
    client = admin_client(settings)

    def stable() -> bool:
        try:
            described = client.describe_groups([group]).get(group, {})
        except KafkaError as exc:
            if exc.retriable:  # e.g. the coordinator is not there yet: ask again
                return False
            raise
        return bool(
            described.get("group_state") == "Stable"
            and len(described.get("members", ())) == members
        )

    try:
        wait_for(stable, workers, f"{members} worker(s) in group {group}", timeout_s=120)
    finally:
        client.close()
        groups_log.setLevel(level)


def _wait(
    worker: WorkerGroup,
    done: Callable[[WorkerTotals], bool],
    what: str,
    left: Callable[[WorkerTotals], int] | None = None,
) -> WorkerTotals:
    """Poll the workers' totals until `done`. With `left` (events still to apply), the
    polls are paced by the expected time left, from 1 s apart down to 50 ms near the end.

    Why paced: each poll is a scrape of every worker's `/metrics`, which costs the worker
    CPU that production (a scrape every 15 s or so) does not spend; at a steady 50 ms it
    was about 5% of a worker's samples in the wide shape (py-spy at b176bcf) and so of
    its measured CPU per event. Near the end the polls are as close as before, so the
    drain's end is still seen within about 50-100 ms."""
    last: list[WorkerTotals] = []
    started = time.monotonic()

    def reached() -> bool:
        last[:] = [worker.totals()]
        return done(last[0])

    def pause_s() -> float:
        if left is None or not last or last[0].applied <= 0:
            return 0.05
        rate = last[0].applied / max(time.monotonic() - started, 1e-3)
        return min(1.0, max(0.05, 0.1 * left(last[0]) / rate))

    wait_for(reached, worker, what, timeout_s=DRAIN_TIMEOUT_S, pause_s=pause_s)
    return last[0]


def raw_vector_rows(
    settings: Settings,
    events: Sequence[dict[str, Any]],
    vectors: Mapping[str, npt.NDArray[np.float32]],
    tag: str,
) -> dict[str, Any]:
    """The ceiling that does not depend on our design: aiokafka consumes the same topics in
    batches of the same size, and cassandra-driver writes one row per event (its id and
    the 384-float vector of its text) with the same bound on requests in flight; then the
    offsets are committed. No validation, read, fold, fence or publish."""
    from aiokafka import AIOKafkaConsumer

    from interest_stream.streams.connection import KafkaConnection

    scratch = Scratch(settings, tag)
    cluster, session = scratch.connect()
    try:
        session.execute(
            f"CREATE TABLE {scratch.keyspace}.bench_rows (event_id text PRIMARY KEY,"
            f" user_id text, vector vector<float, {settings_dim(vectors)}>)",
            timeout=60,
        )
        insert = session.prepare(
            f"INSERT INTO {scratch.keyspace}.bench_rows (event_id, user_id, vector)"
            " VALUES (?, ?, ?)"
        )
        requests = Requests(session, settings.cassandra_max_in_flight)
        dim = settings_dim(vectors)
        scratch.publish(events)

        def write(records: list[Any]) -> None:
            statements = []
            for record in records:
                event = json.loads(record.value)
                bound = insert.bind([event["event_id"], event["user_id"], None])
                bound.values[2] = vector_bytes(vectors[event["text"]], dim)
                statements.append(bound)
            for result in requests.run(statements):
                if isinstance(result, BaseException):
                    raise InterestStreamError(f"raw row write failed: {result!r}")

        async def consume() -> tuple[float, int, int]:
            consumer = AIOKafkaConsumer(
                *(scratch.prefix + t for t in TOPIC_OF_TYPE.values()),
                bootstrap_servers=settings.brokers,
                **KafkaConnection.from_settings(settings).aiokafka(),
                group_id=f"{scratch.prefix}raw",
                auto_offset_reset="earliest",
                enable_auto_commit=False,
            )
            await consumer.start()
            seen = first = 0
            started: float | None = None
            buffered: dict[Any, deque[Any]] = defaultdict(deque)
            loop = asyncio.get_running_loop()
            try:
                while seen < len(events):
                    for partition, fetched in (await consumer.getmany(timeout_ms=50)).items():
                        buffered[partition].extend(fetched)
                    # Batches take records round-robin across partitions, as the worker's
                    # stream does.
                    records: list[Any] = []
                    while len(records) < settings.batch_size and any(buffered.values()):
                        for queue in buffered.values():
                            if queue and len(records) < settings.batch_size:
                                records.append(queue.popleft())
                    if not records:
                        continue
                    # The writes block: off the event loop, as the worker does its batches.
                    await loop.run_in_executor(None, write, records)
                    await consumer.commit()
                    if started is None:
                        started, first = time.monotonic(), len(records)
                    seen += len(records)
            finally:
                await consumer.stop()
            return time.monotonic() - (started or time.monotonic()), seen, first

        seconds, seen, first = asyncio.run(consume())
        counted = seen - first
        return {
            "events": seen,
            "seconds": round(seconds, 3),
            "events_per_s": round(counted / seconds, 1) if seconds > 0 else None,
            "writes": seen,
            "bytes_per_event": 4 * settings_dim(vectors),
        }
    finally:
        cluster.shutdown()
        scratch.drop()


def settings_dim(vectors: Mapping[str, npt.NDArray[np.float32]]) -> int:
    return len(next(iter(vectors.values())))
