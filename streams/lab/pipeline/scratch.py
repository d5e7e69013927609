"""Fresh, uniquely named topics and keyspace for one measurement, removed afterwards; and
publishing a workload into them."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from interest_stream.schemas.events import TOPIC_OF_TYPE
from interest_stream.store.cassandra import CassandraTarget, connect, describe_error, parse_url
from interest_stream.streams.lab.worker_process import WorkerProcess, security_env
from interest_stream.streams.settings import Settings

log = logging.getLogger(__name__)

DROP_TIMEOUT_S = 120.0


class Scratch:
    """Topics prefixed `bench-<tag>-<id>-` and keyspace `bench_<tag>_<id>`."""

    def __init__(self, settings: Settings, tag: str) -> None:
        from interest_stream.store import open_store
        from interest_stream.streams.admin import init_kafka

        suffix = uuid.uuid4().hex[:8]
        self.prefix = f"bench-{tag}-{suffix}-"
        self.keyspace = f"bench_{tag}_{suffix}"
        contact = parse_url(settings.store_url)
        self.target = CassandraTarget(contact.hosts, contact.port, self.keyspace)
        self.store_url = f"cassandra://{self.target}"
        # A copy, not load_settings(): credentials given in `settings` (not the
        # environment) must reach the scratch clients too.
        self.settings = settings.model_copy(
            update={"topic_prefix": self.prefix, "store_url": self.store_url}
        )
        init_kafka(self.settings)
        open_store(
            self.store_url, cassandra=self.settings.cassandra_options(), create_schema=True
        ).close()

    def connect(self) -> tuple[Any, Any]:
        """A driver cluster and session on the scratch keyspace, configured as the store's."""
        return connect(self.target, self.settings.cassandra_options())

    def worker(
        self, log_path: Path, encoder: str, env: Mapping[str, str] | None = None
    ) -> WorkerProcess:
        """A worker process (not started) on these topics and keyspace, batching as the
        settings say, with their credentials (given in the settings, not only in this
        process's environment) and then `env`."""
        return WorkerProcess(
            bootstrap=self.settings.brokers,
            prefix=self.prefix,
            store_url=self.store_url,
            log_path=log_path,
            batch_size=self.settings.batch_size,
            batch_wait_ms=self.settings.batch_wait_ms,
            encoder=encoder,
            env={**security_env(self.settings), **(env or {})},
        )

    def publish(self, events: Sequence[dict[str, Any]]) -> None:
        from interest_stream.streams.kafka.clients import make_producer

        producer = make_producer(self.settings, acks="all", linger_ms=10)
        try:
            for event in events:
                producer.send(
                    self.prefix + TOPIC_OF_TYPE[event["type"]],
                    key=event["user_id"].encode(),
                    value=json.dumps(event).encode(),
                )
            producer.flush(timeout=120)
        finally:
            producer.close()

    def drop(self) -> None:
        """Remove the keyspace and topics; a failure is one warning, never a traceback."""
        try:
            cluster, session = self.connect()
            try:
                session.execute(f"DROP KEYSPACE IF EXISTS {self.keyspace}", timeout=DROP_TIMEOUT_S)
            finally:
                cluster.shutdown()
        except Exception as exc:
            log.warning("could not drop keyspace %s: %s", self.keyspace, describe_error(exc))
        try:
            from interest_stream.streams.admin import admin_client

            admin = admin_client(self.settings)
            try:
                names = [t for t in admin.list_topics() if t.startswith(self.prefix)]
                if names:
                    admin.delete_topics(names)
            finally:
                admin.close()
        except Exception as exc:
            log.warning("could not delete topics %s*: %s", self.prefix, exc)
