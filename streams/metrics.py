"""The worker's Prometheus metrics: what an operator needs to see throughput, lag, freshness,
rejects, errors and the encoder's speed, served on `INTEREST_STREAM_METRICS_PORT`.

Names follow Prometheus conventions (`interest_stream_` prefix, base units in the name,
`_total` for counters) and every label has a bounded set of values: topics, partitions,
reject kinds, store operations. Never a user id, never free text: a rejection is counted
by its `RejectKind` (schemas/records.py), a fixed vocabulary. Each `WorkerMetrics` has its
own registry, so tests and several workers in one process never share counters.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from interest_stream.schemas.records import Rejection
from interest_stream.streams.errors import MissingExtraError

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

# Seconds from a record's append to Kafka until its profile update is confirmed; from one
# batch (tens of ms) to a long outage (minutes).
FRESHNESS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

# What the worker asks of the store, as the `operation` label of store errors.
STORE_OPERATIONS = ("fold", "flush", "discard", "items")


class WorkerMetrics:
    """Counters, gauges and histograms of one worker; `serve(host, port)` exposes them."""

    def __init__(self) -> None:
        try:
            from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
        except ImportError as exc:  # pragma: no cover - depends on the installed extras
            raise MissingExtraError("prometheus-client", "kafka") from exc
        self.registry: CollectorRegistry = CollectorRegistry()
        r = self.registry
        self.consumed = Counter(
            "interest_stream_events_consumed_total",
            "Records taken from the input topics.",
            ["topic"],
            registry=r,
        )
        self.applied = Counter(
            "interest_stream_events_applied_total",
            "Events folded into a stored profile (each counts once, whatever redeliveries).",
            registry=r,
        )
        self.duplicates = Counter(
            "interest_stream_events_duplicate_total",
            "Events skipped as already applied (redelivery or a repeated event id).",
            registry=r,
        )
        self.erased = Counter(
            "interest_stream_events_erased_total",
            "Events of erased users from before their erasure, dropped.",
            registry=r,
        )
        self.rejected = Counter(
            "interest_stream_events_rejected_total",
            "Records that could not become events, by topic and reason kind.",
            ["topic", "reason"],
            registry=r,
        )
        self.dlq = Counter(
            "interest_stream_dlq_records_total",
            "Records written to the dead-letter topic.",
            registry=r,
        )
        self.updates = Counter(
            "interest_stream_profile_updates_published_total",
            "Profile-update records confirmed by the broker (re-announcements included).",
            registry=r,
        )
        self.batches = Counter(
            "interest_stream_batches_total", "Batches processed and acknowledged.", registry=r
        )
        self.batch_seconds = Histogram(
            "interest_stream_batch_duration_seconds",
            "From taking a batch to acknowledging it: fold, write and publish.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.flush_seconds = Histogram(
            "interest_stream_flush_duration_seconds",
            "Writing the touched profiles of one flush to the store.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.freshness = Histogram(
            "interest_stream_freshness_seconds",
            "From a record's append to its input topic until its profile update was confirmed.",
            buckets=FRESHNESS_BUCKETS,
            registry=r,
        )
        self.lag = Gauge(
            "interest_stream_consumer_lag_records",
            "Records in an input partition not yet acknowledged by this worker.",
            ["topic", "partition"],
            registry=r,
        )
        self.profile_writes = Counter(
            "interest_stream_profile_writes_total",
            "Profiles written to the store (one per touched user per flush).",
            registry=r,
        )
        self.bytes_written = Counter(
            "interest_stream_store_written_bytes_total",
            "Bytes of profile rows written to the store.",
            registry=r,
        )
        self.users_touched = Counter(
            "interest_stream_batch_users_total",
            "Users with new events, summed over batches.",
            registry=r,
        )
        self.fence_conflicts = Counter(
            "interest_stream_fence_conflicts_total",
            "Profile writes that lost their fence to another writer and were re-folded.",
            registry=r,
        )
        self.store_errors = Counter(
            "interest_stream_store_errors_total",
            "Store operations that failed (and were retried).",
            ["operation"],
            registry=r,
        )
        for operation in STORE_OPERATIONS:  # served at 0 from the start, so rate() works
            self.store_errors.labels(operation=operation)
        self.publish_errors = Counter(
            "interest_stream_publish_errors_total",
            "Sends to the update or dead-letter topic that failed (and were retried).",
            registry=r,
        )
        self.encoder_texts = Counter(
            "interest_stream_encoder_texts_total", "Texts run through the encoder.", registry=r
        )
        self.encoder_seconds = Counter(
            "interest_stream_encoder_seconds_total", "Time spent encoding texts.", registry=r
        )
        self.encoder_cache_hit_ratio = Gauge(
            "interest_stream_encoder_cache_hit_ratio",
            "Share of texts the encoder cache answered, since start.",
            registry=r,
        )
        self.profile_cache = Gauge(
            "interest_stream_profile_cache_profiles",
            "Profiles held in the worker's cache.",
            registry=r,
        )
        self._server: Any = None
        self._lock = threading.Lock()

    def observe_rejects(self, rejects: Iterable[Rejection]) -> None:
        """Count rejections by topic and kind (`Rejection.label`: a small fixed set)."""
        for rejection in rejects:
            topic = rejection.origin.topic or "unknown"
            self.rejected.labels(topic=topic, reason=rejection.label()).inc()

    def serve(self, host: str, port: int) -> int:
        """Serve /metrics on host:port (0: any free port); returns the port."""
        from prometheus_client import start_http_server

        with self._lock:
            server, _thread = start_http_server(port, addr=host, registry=self.registry)
            self._server = server
            return int(server.server_port)

    def close(self) -> None:
        with self._lock:
            if self._server is not None:
                self._server.shutdown()
                self._server = None
