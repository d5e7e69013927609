"""`interest-stream worker` as a child OS process, for the pipeline benchmark and the
integration tests, which need to start, SIGKILL and restart real workers."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from interest_stream.streams.settings import Settings, env_name

_BATCH_LINE = re.compile(
    r"batch \d+: (?P<records>\d+) records, (?P<applied>\d+) applied, \d+ duplicates, "
    r"(?P<dlq>\d+) to DLQ, (?P<users>\d+) users, (?P<writes>\d+) writes, "
    r"(?P<lost>\d+) lost fences"
)


SECURITY_FIELDS = (
    "kafka_security_protocol",
    "kafka_sasl_mechanism",
    "kafka_username",
    "kafka_password",
    "kafka_ssl_cafile",
    "cassandra_username",
    "cassandra_password",
    "cassandra_ssl_cafile",
    "cassandra_local_dc",
)


def security_env(settings: Settings) -> dict[str, str]:
    """The INTEREST_STREAM_* variables that hand `settings`' credentials, TLS and local DC
    to a worker process (secrets revealed only into the child's environment)."""
    env = {}
    for field in SECURITY_FIELDS:
        value = getattr(settings, field)
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[env_name(field)] = str(value)
    return env


@dataclass
class WorkerTotals:
    """Sums over the per-batch log lines of one or more worker incarnations."""

    batches: int = 0
    records: int = 0
    applied: int = 0
    dlq: int = 0
    users: int = 0
    writes: int = 0
    lost_fences: int = 0


class WorkerProcess:
    """One worker process; its output goes to `log_path` (appended across restarts). `env`
    adds to (or overrides) this process's environment, e.g. `security_env(settings)`."""

    def __init__(
        self,
        *,
        bootstrap: str,
        prefix: str,
        store_url: str,
        log_path: Path,
        batch_size: int = 128,
        batch_wait_ms: int = 100,
        encoder: str = "hashing",
        group: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        if encoder.startswith("precomputed:"):
            # The lab's own entry: the product's worker with vectors saved beforehand.
            program = ["interest_stream.streams.lab.worker_main", "--vectors", encoder[12:]]
        else:
            program = ["interest_stream.streams.cli", "worker", "--encoder", encoder]
        self.command = [
            sys.executable,
            "-m",
            *program,
            "--brokers",
            bootstrap,
            "--topic-prefix",
            prefix,
            "--store",
            store_url,
            "--group",
            group or f"{prefix}group",
            "--batch-size",
            str(batch_size),
            "--batch-wait-ms",
            str(batch_wait_ms),
            "--loglevel",
            "info",
        ]
        self.log_path = log_path
        self.env = dict(env or {})
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        with self.log_path.open("ab") as log:
            env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
            self.process = subprocess.Popen(
                self.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no offset commit, exactly like a crash."""
        if self.process is not None and self.alive():
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def totals(self) -> WorkerTotals:
        totals = WorkerTotals()
        if not self.log_path.exists():
            return totals
        for match in _BATCH_LINE.finditer(self.log_path.read_text(errors="replace")):
            totals.batches += 1
            totals.records += int(match["records"])
            totals.applied += int(match["applied"])
            totals.dlq += int(match["dlq"])
            totals.users += int(match["users"])
            totals.writes += int(match["writes"])
            totals.lost_fences += int(match["lost"])
        return totals
