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
from interest_stream.store.cassandra.schema import ann_index_options
from interest_stream.streams.core.pauses import PausePoint
from interest_stream.streams.core.scoring_profile import ScoringProfile, load_scoring_profile
from interest_stream.streams.errors import ConfigurationError
from interest_stream.streams.interest.horizons import DAY, HOUR, InterestParams
from interest_stream.streams.interest.scoring import ScoreWeights


class Settings(BaseSettings):
    """Every knob of interest-stream; docs/configuration.md is generated from the descriptions."""

    model_config = SettingsConfigDict(env_prefix="INTEREST_STREAM_", frozen=True, extra="forbid")

    # Store
    store_url: str = Field(
        "sqlite:///./interest-stream.db",
        description="Profile store: `sqlite:///path.db` or `cassandra://h1,h2:9042/keyspace`.",
    )
    cassandra_username: str | None = Field(
        None, description="Cassandra password authentication: the role."
    )
    cassandra_password: SecretStr | None = Field(
        None, description="Cassandra password authentication: its password."
    )
    erasure_key: SecretStr | None = Field(
        None,
        description="The secret that keys erasure records: a record keeps only an HMAC of"
        " the user id under it. Unset: a random key kept in the store's settings (then"
        " whoever can read those can test a given id).",
    )
    cassandra_ssl_cafile: Path | None = Field(
        None,
        description="TLS to Cassandra, the certificate chain and the node's host name (IP SAN)"
        " verified against this CA.",
    )
    allow_plaintext_password: bool = Field(
        False,
        description="Send a password over an unencrypted connection (Cassandra without"
        " `CASSANDRA_SSL_CAFILE`, Kafka SASL `PLAIN` over `SASL_PLAINTEXT`); refused otherwise."
        " For a network you trust end to end.",
    )
    cassandra_consistency: Literal["LOCAL_QUORUM", "QUORUM", "LOCAL_ONE", "ONE", "ALL"] = Field(
        "LOCAL_QUORUM", description="Consistency of reads and writes (fence LWTs use LOCAL_SERIAL)."
    )
    cassandra_local_dc: str | None = Field(
        None, description="The local data centre, for DC-aware, token-aware routing."
    )
    cassandra_max_in_flight: int = Field(
        64, ge=1, description="Concurrent Cassandra requests per process."
    )
    ann_refresh_cosine: float = Field(
        0.99,
        ge=-1,
        le=1,
        description="The SAI-indexed copy of a profile's vectors is rewritten when its cosine to"
        " the profile falls below this; 1.0 rewrites on every change.",
    )
    ann_fetch_factor: int = Field(
        4,
        ge=1,
        description="`similar` asks the vector index for this many times the users it returns,"
        " keeping the most similar: a wider search, better recall (see the benchmarks).",
    )
    ann_index_options: str = Field(
        "",
        description="key=value,... for the ANN copies' vector indexes when `init` creates them:"
        " maximum_node_connections, construction_beam_width (on Cassandra 5.0 these need"
        " -Dcassandra.sai.vector.allow_custom_parameters=true), optimize_for; see the"
        " benchmarks. Empty: Cassandra's defaults.",
    )
    ann_horizons: Literal["long,short", "long", "short"] = Field(
        "long,short",
        description="The horizons whose ANN copies `init` indexes, the only ones `similar`"
        " answers: each index costs Cassandra a graph insert per copy, most of its work for"
        " new users (see the benchmarks). A store follows its keyspace's indexes.",
    )
    ann_refresh_interval_s: float = Field(
        30.0,
        ge=0,
        description="...and at most once per this many seconds per user: a busy user's changes"
        " within it become one write of the latest profile. A copy is within"
        " `ANN_REFRESH_COSINE` of its profile, or at most this (plus one round of writes)"
        " behind it; 0: only the cosine applies.",
    )
    # Every copy is a vector-index insert, the largest cost of a write to a new user.
    ann_copies: bool = Field(
        True,
        description="Write the SAI-indexed copies at all. Off, nearest-user queries (`similar`)"
        " see only copies written while it was on; on a small cluster the vector-index"
        " inserts are most of Cassandra's work (see the benchmarks).",
    )
    profile_cache_size: int = Field(
        2_000,
        ge=0,
        description="Profiles the worker keeps in memory between flushes (tens of KB each), so a"
        " user it wrote is not read back; 0 reads every batch. Safe with several workers:"
        " the fence catches a stale entry.",
    )

    # Encoder
    model_dir: Path | None = Field(
        None, description="Exported ONNX models; unset: `~/.cache/interest-stream/models`."
    )
    precision: Literal["auto", "fp32", "int8", "fp16"] = Field(
        "auto",
        description="Encoder precision; `auto`: `fp16` on a GPU, else `int8` if its parity bar"
        " held, else `fp32`.",
    )
    encoder_cache_size: int = Field(
        100_000,
        ge=0,
        description="Encoded texts kept in memory (LRU): 4·dim bytes each (150 MB at the"
        " default), which a worker holds from its start.",
    )

    # Interest model
    short_half_life_s: float = Field(
        6 * HOUR,
        gt=0,
        description="Half-life of the short-term horizon, seconds (flags take `6h`).",
    )
    long_half_life_s: float = Field(
        30 * DAY,
        gt=0,
        description="Half-life of the long-term horizon, seconds (flags take `30d`).",
    )
    weight_click: float = Field(1.0, description="Weight of a click.")
    weight_query: float = Field(0.5, description="Weight of a search query.")
    weight_review: float = Field(
        1.5, description="Weight of a review, times its sentiment (-1..+1)."
    )
    max_clusters: int = Field(8, ge=1, description="Liked interest clusters per user.")
    max_disliked: int = Field(3, ge=0, description="Disliked clusters per user.")
    summary_size: int = Field(
        24, ge=1, description="Events kept in the summary the clusters come from."
    )
    # None: the store's calibration (streams/core/calibration.py, interest/clusters.py).
    cluster_background: float | None = Field(
        None,
        gt=-1,
        lt=1,
        description="The catalogue's background cosine (two unrelated texts); unset: the"
        " store's calibration (`interest-stream calibrate`), else the model's default.",
    )
    cluster_margin: float = Field(
        0.1,
        ge=0,
        lt=1,
        description="How far above the background two groups must stay to merge, in units of"
        " (1 - background).",
    )
    max_domains: int = Field(
        16, ge=1, description="Per-domain interests kept; the rest fold into `(other)`."
    )
    recent_ids: int = Field(
        64, ge=1, description="Event keys kept for dedup: the last this many applied."
    )
    recent_window_s: float = Field(
        30 * DAY,
        gt=0,
        description="Event keys kept for dedup: only those within this window of event time,"
        " seconds.",
    )
    max_future_skew_s: float = Field(
        300.0, ge=0, description="Events further in the future than this, seconds, are rejected."
    )
    # The default, the Unix epoch, accepts any historical log.
    min_event_time: str = Field(
        "1970-01-01T00:00:00Z",
        description="Older events are rejected; RFC 3339 with an offset, or epoch seconds. Set it"
        " to where your history starts to catch seconds sent as milliseconds (they land in"
        " January 1970).",
    )

    scoring_profile: Path | None = Field(
        None,
        description="A scoring profile file from `evaluate --fit`: fitted score weights, τ, β"
        " and context mode for `profile score`/`rank` and the Python client, fitted"
        " half-lives for writers when no half-life is set; unset: the shipped defaults.",
    )

    # Batching: the worker folds batches into memory and writes each touched user once per
    # flush, at most every `flush_interval_ms` (sooner when it has caught up).
    batch_size: int = Field(1024, ge=1, description="A batch: at most this many records.")
    batch_wait_ms: int = Field(
        200, ge=1, description="A batch: what came within this wait, milliseconds."
    )
    flush_interval_ms: int = Field(
        500,
        ge=0,
        description="Under backlog, the longest a fold waits for its flush, milliseconds (0:"
        " flush every batch).",
    )

    # Operations
    metrics_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="Port of the worker's Prometheus `/metrics` (off when unset).",
    )
    metrics_host: str = Field(
        "127.0.0.1", description="Address `/metrics` binds to (`0.0.0.0` in a container)."
    )

    # Kafka
    brokers: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers (host:port,...).")
    topic_prefix: str = Field("", description="Prefix of every topic name.")
    consumer_group: str = Field("interest-stream", description="The worker's consumer group.")
    partitions: int = Field(6, ge=1, description="Partitions of the topics `init` creates.")
    replication_factor: int = Field(
        1,
        ge=1,
        description="Replicas of the topics `init` creates (with 3 or more,"
        " `min.insync.replicas` 2).",
    )
    updates_topic: str = Field("profile-updates", description="Topic of profile updates.")
    items_topic: str = Field("items", description="Topic of the item catalogue.")
    dlq_topic: str = Field("interest-stream-dlq", description="Topic of rejected records.")
    repartition_topic: str = Field(
        "events-by-user",
        description="Topic that carries events a producer put on another partition than their"
        " user's to their user's partition (streams/core/routing.py); co-partitioned with"
        " the inputs.",
    )
    dlq_max_bytes: int = Field(
        524_288,
        ge=1024,
        le=900_000,
        description="A rejected record longer than this goes to the DLQ as its first this-many"
        " bytes, with its size, topic, partition and offset (streams/core/dead_letters.py).",
    )
    # Kept below the poll interval, so a stuck flush never holds a rebalance longer.
    retry_budget_s: float = Field(
        300.0,
        gt=0,
        description="How long the worker retries a failing store or broker before it stops"
        " with one line, seconds (below the poll interval).",
    )
    fault_crash_at: PausePoint | None = Field(
        None,
        description="Tests only: the process kills itself (SIGKILL) the first time it reaches"
        " this pause point (streams/core/pauses.py). Never set in production.",
    )
    fault_hold_dir: Path | None = Field(
        None,
        description="Tests only: a file named after a pause point in this folder holds the"
        " process there until the file is removed. Never set in production.",
    )
    include_vectors: bool = Field(True, description="Vectors in profile-update records.")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="How clients reach Kafka."
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="SASL mechanism; unset with SASL: SCRAM-SHA-512."
    )
    kafka_username: str | None = Field(None, description="SASL user name.")
    kafka_password: SecretStr | None = Field(None, description="SASL password.")
    kafka_ssl_cafile: Path | None = Field(
        None, description="TLS to Kafka, verified against this CA with host names checked."
    )
    kafka_session_timeout_s: float = Field(
        10.0, gt=0, description="Consumer group liveness: session timeout, seconds."
    )
    kafka_max_poll_interval_s: float = Field(
        600.0, gt=0, description="Consumer group liveness: longest time between polls, seconds."
    )
    web_enabled: bool = Field(False, description="Faust's web server (bound to 127.0.0.1 when on).")
    web_port: int = Field(6066, description="Port of Faust's web server.")
    # The erasure bounds of profile-updates, set by `init` (admin.erasure_bounds).
    updates_max_compaction_lag_s: float = Field(
        DAY,
        gt=0,
        description="`init` sets `max.compaction.lag.ms` and `segment.ms` of `profile-updates` to"
        " this: an erased user's earlier updates are compacted away this long after they were"
        " written, plus the log cleaner's backoff, once the partition has a later record.",
    )
    updates_delete_retention_s: float = Field(
        DAY,
        ge=0,
        description="`init` sets `delete.retention.ms` of `profile-updates`: how long a"
        " tombstone itself stays after compaction (consumers that were away longer miss it).",
    )
    # Identities by duty (streams/grants.py); read by `init` only.
    worker_kafka_user: str | None = Field(
        None, description="Kafka user of the worker: `init` grants it its ACLs (unset: none)."
    )
    reader_kafka_user: str | None = Field(
        None,
        description="Kafka user of the readers (`watch`, update consumers): `init` grants it"
        " READ on `profile-updates` and groups prefixed `READER_GROUP_PREFIX`.",
    )
    eraser_kafka_user: str | None = Field(
        None, description="Kafka user of `forget`: `init` grants it its ACLs."
    )
    producer_kafka_user: str | None = Field(
        None, description="Kafka user of the producers: `init` grants it WRITE on the inputs."
    )
    worker_cassandra_role: str | None = Field(
        None, description="Cassandra role of the worker: `init` grants it its tables."
    )
    reader_cassandra_role: str | None = Field(
        None,
        description="Cassandra role of the rankers and `profile …`: `init` grants it SELECT on"
        " the profile tables, `items` and `settings`.",
    )
    eraser_cassandra_role: str | None = Field(
        None, description="Cassandra role of `forget`: `init` grants it its tables."
    )
    reader_group_prefix: str = Field(
        "profile-reader",
        description="Consumer groups the reader's Kafka user may use (a PREFIXED ACL).",
    )

    def scoring(self) -> ScoringProfile | None:
        """The configured scoring profile, read now (call once at start-up).

        Returns:
            The profile `scoring_profile` names, or None when none is configured.
        """
        if self.scoring_profile is None:
            return None
        return load_scoring_profile(self.scoring_profile)

    def score_weights(self) -> ScoreWeights:
        """The weights rankers score with.

        Returns:
            The scoring profile's weights when one is configured, else the shipped defaults.
        """
        profile = self.scoring()
        return profile.weights if profile is not None else ScoreWeights()

    def half_lives(self) -> tuple[float, float]:
        """The (short, long) half-lives writers fold with.

        Returns:
            A half-life set explicitly, else the scoring profile's fitted one, else the
            default.
        """
        short, long = self.short_half_life_s, self.long_half_life_s
        explicit = self.model_fields_set
        profile = self.scoring()
        if profile is not None:
            if "short_half_life_s" not in explicit and profile.short_half_life_s is not None:
                short = profile.short_half_life_s
            if "long_half_life_s" not in explicit and profile.long_half_life_s is not None:
                long = profile.long_half_life_s
        return short, long

    def interest_params(self) -> InterestParams:
        """The interest model's parameters.

        Returns:
            Half-lives (see `half_lives`), type weights, summary, cluster and dedup bounds
            from these settings.
        """
        short, long = self.half_lives()
        return InterestParams(
            short_half_life_s=short,
            long_half_life_s=long,
            type_weights={
                "click": self.weight_click,
                "query": self.weight_query,
                "review": self.weight_review,
            },
            summary_size=self.summary_size,
            max_clusters=self.max_clusters,
            max_disliked=self.max_disliked,
            cluster_background=InterestParams.cluster_background
            if self.cluster_background is None
            else self.cluster_background,
            cluster_margin=self.cluster_margin,
            max_domains=self.max_domains,
            recent_ids=self.recent_ids,
            recent_window_s=self.recent_window_s,
        )

    def cassandra_options(self) -> CassandraOptions:
        """What the Cassandra store needs besides its URL.

        Returns:
            Credentials, TLS, consistency, routing, concurrency and ANN copy settings.
        """
        return CassandraOptions(
            username=self.cassandra_username,
            password=self.cassandra_password,
            ssl_cafile=self.cassandra_ssl_cafile,
            allow_plaintext_password=self.allow_plaintext_password,
            consistency=self.cassandra_consistency,
            local_dc=self.cassandra_local_dc,
            max_in_flight=self.cassandra_max_in_flight,
            ann_refresh_cosine=self.ann_refresh_cosine,
            ann_refresh_interval_s=self.ann_refresh_interval_s,
            ann_fetch_factor=self.ann_fetch_factor,
            ann_index_options=tuple(ann_index_options(self.ann_index_options).items()),
            ann_copies=self.ann_copies,
            ann_horizons=tuple(self.ann_horizons.split(",")),
            erasure_key=self.erasure_key,
        )

    @field_validator("ann_index_options")
    @classmethod
    def _check_ann_index_options(cls, value: str) -> str:
        ann_index_options(value)  # its ConfigurationError names the setting and the fault
        return value

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
        """The bounds incoming events are checked against.

        Returns:
            The future skew allowed and the oldest event time accepted.
        """
        return ValidationRules(
            max_future_skew_s=self.max_future_skew_s,
            min_epoch_s=parse_time_bound(self.min_event_time),
        )

    def topic(self, name: str) -> str:
        """Prefix a topic name (tests and multi-tenant clusters use a prefix).

        Args:
            name: The topic's name without the prefix, e.g. `clicks`.

        Returns:
            The configured prefix followed by `name`.
        """
        return f"{self.topic_prefix}{name}"


def env_name(field: str) -> str:
    """The environment variable of a settings field.

    Args:
        field: The field's name, e.g. `store_url`.

    Returns:
        The variable, e.g. `INTEREST_STREAM_STORE_URL`.
    """
    prefix = Settings.model_config.get("env_prefix", "")
    return f"{prefix}{field}".upper()


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment once; flags win over it.

    Args:
        **overrides: Field values (CLI flags); None means not given.

    Returns:
        The frozen settings.

    Raises:
        ConfigurationError: A value is invalid; one line names each field and why.
    """
    given = {key: value for key, value in overrides.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigurationError(f"invalid configuration: {problems}") from exc
