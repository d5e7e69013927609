"""One frozen settings object, read from the environment (prefix INTEREST_STREAM_) at start-up.

Nothing reads configuration at import time: commands call `load_settings()` once and pass
the object (or pieces of it) down. Secrets are `SecretStr`, so they never reach a log line.
CLI flags override environment values by being passed to `load_settings(**overrides)`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from interest_stream.schemas.events import ValidationRules, parse_time_bound
from interest_stream.store.cassandra.connect import CassandraOptions
from interest_stream.streams.errors import ConfigurationError
from interest_stream.streams.model.horizons import DAY, HOUR, InterestParams


class Settings(BaseSettings):
    """Every knob of interest-stream; see the configuration table in the README."""

    model_config = SettingsConfigDict(env_prefix="INTEREST_STREAM_", frozen=True, extra="forbid")

    # Store
    store_url: str = Field("sqlite:///./interest-stream.db", description="Profile store URL")
    cassandra_username: str | None = None
    cassandra_password: SecretStr | None = None
    cassandra_ssl_cafile: Path | None = None
    cassandra_consistency: Literal["LOCAL_QUORUM", "QUORUM", "LOCAL_ONE", "ONE", "ALL"] = (
        "LOCAL_QUORUM"
    )
    cassandra_local_dc: str | None = None
    cassandra_max_in_flight: int = Field(64, ge=1)
    # The SAI-indexed copy of a profile's vectors is rewritten when the profile has moved
    # away from it: cosine to the copy below this (1.0: on every change).
    ann_refresh_cosine: float = Field(0.99, ge=-1, le=1)
    # Off: the worker writes no ANN copies (every copy is a vector-index insert, the
    # largest cost of a write to a new user); nearest-user queries then see only the copies
    # written while it was on.
    ann_copies: bool = True
    # Profiles kept in memory between batches (0: read every batch); tens of KB each.
    profile_cache_size: int = Field(2_000, ge=0)

    # Encoder
    model_dir: Path | None = Field(None, description="Where exported ONNX models live")
    precision: Literal["auto", "fp32", "int8", "fp16"] = "auto"
    encoder_cache_size: int = Field(100_000, ge=0)

    # Interest model
    short_half_life_s: float = Field(6 * HOUR, gt=0)
    long_half_life_s: float = Field(30 * DAY, gt=0)
    weight_click: float = 1.0
    weight_query: float = 0.5
    weight_review: float = 1.5
    max_clusters: int = Field(8, ge=1)
    max_disliked: int = Field(3, ge=0)
    summary_size: int = Field(24, ge=1)
    # The cosine of unrelated texts of the catalogue; None: estimated from the texts once
    # per store and kept there (see model/clusters.py).
    cluster_background: float | None = Field(None, gt=-1, lt=1)
    cluster_margin: float = Field(0.1, ge=0, lt=1)
    max_domains: int = Field(16, ge=1)
    recent_ids: int = Field(64, ge=1)
    recent_window_s: float = Field(30 * DAY, gt=0)
    max_future_skew_s: float = Field(300.0, ge=0)
    # The oldest event time accepted: RFC 3339 with an offset, or epoch seconds. The default,
    # the Unix epoch, accepts any historical log; raise it to where your history starts to
    # catch unit mistakes (seconds sent as milliseconds land in January 1970).
    min_event_time: str = "1970-01-01T00:00:00Z"

    # Batching: a batch is up to `batch_size` events or `batch_wait_ms`; the worker folds
    # batches into memory and writes each touched user once per flush, at most every
    # `flush_interval_ms` (sooner when it has caught up with its partitions).
    batch_size: int = Field(1024, ge=1)
    batch_wait_ms: int = Field(200, ge=1)
    flush_interval_ms: int = Field(500, ge=0)

    # Operations: Prometheus metrics of the worker (off when no port is set).
    metrics_port: int | None = Field(None, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"

    # Kafka
    brokers: str = "127.0.0.1:9092"
    topic_prefix: str = ""
    consumer_group: str = "interest-stream"
    partitions: int = Field(6, ge=1)
    replication_factor: int = Field(1, ge=1)
    updates_topic: str = "profile-updates"
    items_topic: str = "items"
    dlq_topic: str = "interest-stream-dlq"
    # Events a producer put on another partition than their user's go through this topic to
    # their user's partition (streams/core/routing.py); co-partitioned with the inputs.
    repartition_topic: str = "events-by-user"
    # A rejected record longer than this goes to the DLQ as its first this-many bytes, with
    # its size and its topic, partition and offset (streams/core/dead_letters.py).
    dlq_max_bytes: int = Field(524_288, ge=1024, le=900_000)
    # How long the worker retries a failing store or broker before it stops (kept below
    # the poll interval, so a stuck flush never holds a rebalance longer).
    retry_budget_s: float = Field(300.0, gt=0)
    # Fault injection for tests: SIGKILL the process the first time it reaches this pause
    # point (streams/core/pauses.py), e.g. "after-write". Never set in production.
    fault_crash_at: (
        Literal[
            "after-claim",
            "after-read",
            "before-write",
            "after-write",
            "before-publish",
            "before-ack",
            "before-erase",
            "before-tombstone",
        ]
        | None
    ) = None
    # Fault injection for tests: a file named after a pause point in this folder holds the
    # process there until the file is removed. Never set in production.
    fault_hold_dir: Path | None = None
    include_vectors: bool = True
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_username: str | None = None
    kafka_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = None
    kafka_session_timeout_s: float = Field(10.0, gt=0)
    kafka_max_poll_interval_s: float = Field(600.0, gt=0)
    web_enabled: bool = False
    web_port: int = 6066

    def interest_params(self) -> InterestParams:
        return InterestParams(
            short_half_life_s=self.short_half_life_s,
            long_half_life_s=self.long_half_life_s,
            type_weights={
                "click": self.weight_click,
                "query": self.weight_query,
                "review": self.weight_review,
            },
            summary_size=self.summary_size,
            max_clusters=self.max_clusters,
            max_disliked=self.max_disliked,
            cluster_background=(
                self.cluster_background
                if self.cluster_background is not None
                else InterestParams.cluster_background
            ),
            cluster_margin=self.cluster_margin,
            max_domains=self.max_domains,
            recent_ids=self.recent_ids,
            recent_window_s=self.recent_window_s,
        )

    def cassandra_options(self) -> CassandraOptions:
        return CassandraOptions(
            username=self.cassandra_username,
            password=self.cassandra_password,
            ssl_cafile=self.cassandra_ssl_cafile,
            consistency=self.cassandra_consistency,
            local_dc=self.cassandra_local_dc,
            max_in_flight=self.cassandra_max_in_flight,
            ann_refresh_cosine=self.ann_refresh_cosine,
            ann_copies=self.ann_copies,
        )

    @field_validator("min_event_time", mode="before")
    @classmethod
    def _check_min_event_time(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str):
            parse_time_bound(value)  # a ValueError names what is wrong
        return value

    @model_validator(mode="after")
    def _retries_end_before_the_poll_interval(self) -> Settings:
        if self.retry_budget_s >= self.kafka_max_poll_interval_s:
            raise ValueError(
                f"retry_budget_s ({self.retry_budget_s:g}) must be below"
                f" kafka_max_poll_interval_s ({self.kafka_max_poll_interval_s:g}): a flush"
                " retrying longer would hold the group's rebalances"
            )
        return self

    def validation_rules(self) -> ValidationRules:
        return ValidationRules(
            max_future_skew_s=self.max_future_skew_s,
            min_epoch_s=parse_time_bound(self.min_event_time),
        )

    def topic(self, name: str) -> str:
        """Topic name with the configured prefix (tests and multi-tenant clusters use one)."""
        return f"{self.topic_prefix}{name}"


def env_name(field: str) -> str:
    """The environment variable of a settings field."""
    prefix = Settings.model_config.get("env_prefix", "")
    return f"{prefix}{field}".upper()


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment; non-None overrides (CLI flags) win."""
    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigurationError(f"invalid configuration: {problems}") from exc


def parse_duration(text: str) -> float:
    """'90s', '6h', '30d', '15m' or plain seconds -> seconds."""
    units = {"s": 1.0, "m": 60.0, "h": HOUR, "d": DAY, "w": 7 * DAY}
    value = text.strip().lower()
    try:
        if value and value[-1] in units:
            return float(value[:-1]) * units[value[-1]]
        return float(value)
    except ValueError as exc:
        raise ConfigurationError(f"bad duration {text!r}: use e.g. 90s, 15m, 6h, 30d") from exc
