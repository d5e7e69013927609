"""`interest-stream worker` as a child OS process, for the pipeline benchmark and the
integration tests, which need to start, SIGKILL and restart real workers.

The worker's counters reach the caller as data: each process serves its Prometheus
metrics on a free local port, and `metrics()` reads and parses them (never its logs).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

from interest_stream.streams.settings import Settings, env_name

PREFIX = "interest_stream_"


def free_port() -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text exposition -> {name without prefix: value}, labels summed over."""
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith(PREFIX):
            continue
        name_part, _, value = line.rpartition(" ")
        name = name_part.split("{", 1)[0][len(PREFIX) :]
        totals[name] = totals.get(name, 0.0) + float(value)
    return totals


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
    "allow_plaintext_password",
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
    """What one worker process did, from its metrics."""

    records: int = 0
    applied: int = 0
    duplicates: int = 0
    dlq: int = 0
    batches: int = 0
    flushes: int = 0
    users: int = 0
    writes: int = 0
    bytes_written: int = 0
    lost_fences: int = 0

    @classmethod
    def of(cls, metrics: Mapping[str, float]) -> WorkerTotals:
        def get(name: str) -> int:
            return int(metrics.get(name, 0.0))

        return cls(
            records=get("events_consumed_total"),
            applied=get("events_applied_total"),
            duplicates=get("events_duplicate_total"),
            dlq=get("dlq_records_total"),
            batches=get("batches_total"),
            flushes=get("flush_duration_seconds_count"),
            users=get("batch_users_total"),
            writes=get("profile_writes_total"),
            bytes_written=get("store_written_bytes_total"),
            lost_fences=get("fence_conflicts_total"),
        )


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
        self.group = group or f"{prefix}group"
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
            self.group,
            "--batch-size",
            str(batch_size),
            "--batch-wait-ms",
            str(batch_wait_ms),
            "--loglevel",
            "info",
        ]
        self.env = dict(env or {})
        self.log_path = log_path
        self.metrics_port = 0
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        self.metrics_port = free_port()
        with self.log_path.open("ab") as log:
            env = {
                **os.environ,
                "PYTHONUNBUFFERED": "1",
                "INTEREST_STREAM_METRICS_PORT": str(self.metrics_port),
                "INTEREST_STREAM_METRICS_HOST": "127.0.0.1",
                **self.env,
            }
            self.process = subprocess.Popen(
                self.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

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

    def metrics_text(self, timeout: float = 5.0) -> str:
        """The worker's /metrics page (while it runs)."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return str(response.read().decode())

    def metrics(self) -> dict[str, float]:
        """The worker's counters, summed over labels; empty if it does not answer."""
        try:
            return parse_metrics(self.metrics_text())
        except OSError:
            return {}

    def totals(self) -> WorkerTotals:
        return WorkerTotals.of(self.metrics())


class WorkerGroup:
    """Several worker processes of one consumer group on this host, read as one: what the
    documented way to use more cores looks like (docs/operations.md, "More than one worker
    per host"). Alive while every member is; its totals are the members' summed."""

    def __init__(self, members: Sequence[WorkerProcess]) -> None:
        if not members:
            raise ValueError("a worker group needs at least one process")
        self.members = list(members)

    def start(self) -> WorkerGroup:
        """Start every member; if one cannot start, stop those that did."""
        try:
            for member in self.members:
                member.start()
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def pids(self) -> list[int]:
        return [pid for pid in (m.pid for m in self.members) if pid is not None]

    def alive(self) -> bool:
        return all(member.alive() for member in self.members)

    def pause(self) -> None:
        """SIGSTOP every member: frozen where it is, still in the group until its session
        times out (a caller keeps the pause shorter than that)."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def _signal(self, signum: signal.Signals) -> None:
        for member in self.members:
            if member.process is not None and member.alive():
                member.process.send_signal(signum)

    def stop(self) -> None:
        """SIGTERM to all at once (they leave the group together), then wait for each; one
        that does not stop is killed, and the others are still stopped."""
        self.resume()  # a stopped process cannot act on SIGTERM
        self._signal(signal.SIGTERM)
        failure: BaseException | None = None
        for member in self.members:
            try:
                member.stop()
            except Exception as exc:  # stop the rest, then report the first
                failure = failure or exc
        if failure is not None:
            raise failure

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(
            f"[worker {i}]\n{member.log_tail(lines)}" for i, member in enumerate(self.members)
        )

    def totals(self) -> WorkerTotals:
        """The members' totals summed (a member that does not answer counts 0: see
        `records_by_member` for a reading that must not miss one)."""
        summed = WorkerTotals()
        for member in self.members:
            part = member.totals()
            for item in fields(WorkerTotals):
                setattr(summed, item.name, getattr(summed, item.name) + getattr(part, item.name))
        return summed

    def records_by_member(self, attempts: int = 5) -> list[int]:
        """Records each member consumed, read from every member's metrics (retried: a
        member that does not answer is an error, never a 0)."""
        counts = []
        for member in self.members:
            for attempt in range(attempts):
                try:
                    text = member.metrics_text(timeout=10.0)
                    break
                except OSError:
                    if attempt == attempts - 1:
                        raise
            counts.append(WorkerTotals.of(parse_metrics(text)).records)
        return counts
