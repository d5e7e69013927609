"""kafka-python producers and consumers for the users' side (`publish`, `watch`), configured
from `Settings` (TLS, SASL/SCRAM) and failing with one clear `BrokerError`.

kafka-python reports an unreachable cluster differently across versions (2.x raises
`NoBrokersAvailable`, 3.x a `KafkaTimeoutError` "Unable to bootstrap"); both are
`KafkaError`s and become "cannot reach Kafka at ..." here, or the broker's own reason when
one connection attempt can tell it (credentials refused, TLS refused or required). Topics
are checked before use, because the local broker (like many) auto-creates a missing topic
with one partition, which would silently break the worker's co-partitioning. The worker
itself uses Faust's aiokafka clients, not these.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from interest_stream.streams.connection import KafkaConnection
from interest_stream.streams.errors import (
    BrokerError,
    BrokerRefusedError,
    BrokerUnreachableError,
    MissingExtraError,
    TopicLayoutError,
)
from interest_stream.streams.settings import Settings

BOOTSTRAP_TIMEOUT_S = 10.0


def _require_kafka() -> None:
    try:
        import kafka  # noqa: F401
    except ImportError as exc:
        raise MissingExtraError("kafka-python", "kafka") from exc


class _HideSaslPassword(logging.Filter):
    """kafka-python's KafkaAdminClient logs its whole configuration at DEBUG (`-vv`), the
    SASL password included: the record keeps every option but that one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, Mapping) and record.args.get("sasl_plain_password"):
            record.args = {**record.args, "sasl_plain_password": "**********"}
        return True


def _hide_password_from_debug_logs() -> None:
    logger = logging.getLogger("kafka.admin.client")
    if not any(isinstance(f, _HideSaslPassword) for f in logger.filters):
        logger.addFilter(_HideSaslPassword())


def unreachable(settings: Settings, exc: BaseException) -> BrokerError:
    """The one-line error for a cluster that cannot be reached or refuses us."""
    detail = str(exc).strip() or type(exc).__name__
    reason = refusal_reason(settings)
    if reason is not None:
        return BrokerRefusedError(f"Kafka at {settings.brokers} {reason}")
    if _refused(exc):  # an authorization failure, a record too large: the broker said no
        return BrokerRefusedError(f"Kafka at {settings.brokers} refused: {detail}")
    return BrokerUnreachableError(f"cannot reach Kafka at {settings.brokers}: {detail}")


def _refused(exc: BaseException) -> bool:
    """A kafka-python error the broker answered with and that retrying cannot fix."""
    from kafka.errors import KafkaError

    kind = type(exc)
    return isinstance(exc, KafkaError) and kind is not KafkaError and not exc.retriable


def security_options(settings: Settings) -> dict[str, Any]:
    """kafka-python keyword arguments for the configured security (streams/connection.py);
    with SASL, kafka-python's DEBUG logs of its configuration hide the password."""
    options = KafkaConnection.from_settings(settings).kafka_python()
    if "sasl_plain_password" in options:
        _hide_password_from_debug_logs()
    return options


def refusal_reason(settings: Settings, timeout_s: float = 5.0) -> str | None:
    """Why the first broker refuses this client, asked with one aiokafka connection; None
    when it does not refuse (or cannot be asked).

    kafka-python 3.0 loses the broker's SaslAuthenticate error: the broker closes the
    connection right after sending it, and kafka-python's TLS transport drops the bytes it
    read together with the end of the stream, so a wrong password surfaces only as "Unable
    to bootstrap" after the bootstrap timeout. aiokafka (installed with the worker's extra)
    reports the broker's reason, so it is asked once, on the error path only.
    """
    try:
        from aiokafka.conn import create_conn
        from aiokafka.errors import KafkaConnectionError, SaslAuthenticationFailed
    except ImportError:
        return None
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {"request_timeout_ms": 3000}

    async def attempt() -> None:
        connection = KafkaConnection.from_settings(settings)
        host, _, port = connection.servers()[0].rpartition(":")
        options.update(connection.aiokafka())
        conn = await asyncio.wait_for(create_conn(host, int(port), **options), timeout_s)
        conn.close()

    try:
        asyncio.run(attempt())
    except SaslAuthenticationFailed as exc:
        message = str(exc).split(": ", 1)[-1]  # drop aiokafka's "[Error 58] ...:" prefix
        return (
            f"refused the credentials of user {settings.kafka_username!r}"
            f" ({protocol}, {options['sasl_mechanism']}): {message}"
        )
    except ssl.SSLError as exc:
        return f"refused the TLS connection ({protocol}): {exc}"
    except KafkaConnectionError as exc:
        if protocol in ("PLAINTEXT", "SASL_PLAINTEXT") and "closed" in str(exc):
            return (
                f"closed the {protocol} connection at once: does the listener require TLS"
                " (INTEREST_STREAM_KAFKA_SECURITY_PROTOCOL=SSL or SASL_SSL)?"
            )
        return None
    except Exception:  # unreachable, timed out, inside a running loop: no better reason
        return None
    return None


def make_producer(settings: Settings, **config: Any) -> Any:
    """A connected KafkaProducer; `config` adds or overrides producer settings."""
    _require_kafka()
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    options = {
        "bootstrap_servers": KafkaConnection.from_settings(settings).servers(),
        "client_id": "interest-stream-publish",
        "bootstrap_timeout_ms": int(BOOTSTRAP_TIMEOUT_S * 1000),
        **security_options(settings),
        **config,
    }
    if "allow_auto_create_topics" not in KafkaProducer.DEFAULT_CONFIG:  # kafka-python 2.x
        options.pop("allow_auto_create_topics", None)
    try:
        return KafkaProducer(**options)
    except KafkaError as exc:
        raise unreachable(settings, exc) from exc


def make_consumer(settings: Settings, **config: Any) -> Any:
    """A connected KafkaConsumer subscribed to nothing yet; `config` adds settings."""
    _require_kafka()
    from kafka import KafkaConsumer
    from kafka.errors import KafkaError

    options = {
        "bootstrap_servers": KafkaConnection.from_settings(settings).servers(),
        "client_id": "interest-stream-watch",
        "bootstrap_timeout_ms": int(BOOTSTRAP_TIMEOUT_S * 1000),
        **security_options(settings),
        **config,
    }
    try:
        return KafkaConsumer(**options)
    except KafkaError as exc:
        raise unreachable(settings, exc) from exc


def require_topics(settings: Settings, consumer: Any, topics: Iterable[str]) -> None:
    """Raise TopicLayoutError naming the first of `topics` the cluster does not have."""
    from kafka.errors import KafkaError

    try:
        existing = set(consumer.topics())
    except KafkaError as exc:
        raise unreachable(settings, exc) from exc
    missing = sorted(set(topics) - existing)
    if missing:
        # Brokers list only the topics a user may DESCRIBE: a missing one may be hidden.
        hidden = (
            f" or user {settings.kafka_username!r} may not see it"
            if settings.kafka_username
            else ""
        )
        raise TopicLayoutError(
            f"topic {missing[0]} does not exist on {settings.brokers}{hidden}"
            + (f" (nor {', '.join(missing[1:])})" if len(missing) > 1 else "")
            + ": run `interest-stream init` (with the same --topic-prefix) first"
            + (", or grant the user its ACLs" if hidden else "")
        )


def partition_counts(
    settings: Settings, topics: Sequence[str], *, also_required: Iterable[str] = ()
) -> dict[str, int]:
    """The partition count of each of `topics`, after checking that they and
    `also_required` exist (TopicLayoutError naming the first missing one)."""
    from kafka.errors import KafkaError

    consumer = make_consumer(settings, group_id=None, enable_auto_commit=False)
    try:
        require_topics(settings, consumer, [*topics, *also_required])
        return {name: len(consumer.partitions_for_topic(name) or ()) for name in topics}
    except KafkaError as exc:
        raise unreachable(settings, exc) from exc
    finally:
        consumer.close()


def check_worker_topics(settings: Settings) -> int:
    """Before a worker starts: the brokers accept our credentials, every topic the worker
    reads or writes exists (Faust would otherwise have a one-partition topic auto-created),
    and the input and repartition topics have equal partition counts (a user's events are
    folded by the owner of one partition across all of them). Returns that count.

    Raises TopicLayoutError (or BrokerUnreachableError, BrokerRefusedError) with one line;
    kafka-python's bootstrap is the only cost (well under a second on a reachable cluster).
    """
    from interest_stream.schemas.events import INPUT_TOPICS

    outputs = (settings.items_topic, settings.updates_topic, settings.dlq_topic)
    counts = partition_counts(
        settings,
        [settings.topic(name) for name in (*INPUT_TOPICS, settings.repartition_topic)],
        also_required=[settings.topic(name) for name in outputs],
    )
    if len(set(counts.values())) > 1:
        layout = ", ".join(f"{name} {count}" for name, count in counts.items())
        raise TopicLayoutError(
            f"input topics have partition counts {layout} on {settings.brokers}: the worker"
            " reads them co-partitioned by user, so all of them need the same count"
            " (`interest-stream init` reports it too)"
        )
    count = next(iter(counts.values()))
    if not count:
        raise TopicLayoutError(f"topic {next(iter(counts))} has no partitions")
    return count
