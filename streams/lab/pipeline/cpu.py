"""CPU seconds of the processes a measurement shares the machine with: the worker, the
Cassandra and Kafka servers (found by their main class when they run on this machine) and
the benchmark itself, read from /proc before and after (Linux only; elsewhere empty)."""

from __future__ import annotations

import os
from pathlib import Path

SERVERS = {
    "cassandra": "org.apache.cassandra.service.CassandraDaemon",
    "kafka": "kafka.Kafka",
}
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU of a process so far; None if it cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # Fields after the command: state is index 0, utime 11, stime 12.
    return (int(fields[11]) + int(fields[12])) / _TICKS


def server_pids() -> dict[str, list[int]]:
    """Local Kafka and Cassandra JVMs, by the main class on their command line."""
    found: dict[str, list[int]] = {name: [] for name in SERVERS}
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else []:
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        for name, main_class in SERVERS.items():
            if main_class in command:
                found[name].append(int(entry.name))
    return found


class CpuMeter:
    """CPU seconds used between `start()` and `stop()` by each named process group."""

    def __init__(self, worker_pid: int | None) -> None:
        self.pids = {name: pids for name, pids in server_pids().items() if pids}
        if worker_pid is not None:
            self.pids["worker"] = [worker_pid]
        self.pids["benchmark"] = [os.getpid()]
        self._start: dict[str, float] = {}

    def _read(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for name, pids in self.pids.items():
            values = [cpu_seconds(pid) for pid in pids]
            totals[name] = sum(v for v in values if v is not None)
        return totals

    def start(self) -> None:
        self._start = self._read()

    def stop(self) -> dict[str, float]:
        now = self._read()
        return {name: round(now[name] - self._start.get(name, 0.0), 3) for name in now}
