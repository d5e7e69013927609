"""CPU seconds of the processes a measurement shares the machine with: the worker, the
Cassandra and Kafka servers (found by their main class when they run on this machine) and
the benchmark itself, read from /proc before and after (Linux only; elsewhere empty)."""

from __future__ import annotations

import os
from collections.abc import Sequence
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


def _listening_inodes(ports: set[int]) -> set[str]:
    """Socket inodes listening (TCP state 0A) on any of `ports`, IPv4 and IPv6."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) in ports:
                inodes.add(fields[9])
    return inodes


def _listens(pid: int, inodes: set[str]) -> bool:
    try:
        links = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
    except OSError:
        return False
    return any(link[8:-1] in inodes for link in links if link.startswith("socket:["))


def server_pids(ports: set[int] | None = None) -> dict[str, list[int]]:
    """Local Kafka and Cassandra JVMs, by the main class on their command line; with
    `ports`, only those listening on one of them (a shared machine may run other people's
    servers, whose CPU is not this measurement's)."""
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
    if ports:
        inodes = _listening_inodes(ports)
        found = {name: [p for p in pids if _listens(p, inodes)] for name, pids in found.items()}
    return found


class CpuMeter:
    """CPU seconds used between `start()` and `stop()` by each named process group."""

    def __init__(self, worker_pids: Sequence[int], ports: set[int] | None = None) -> None:
        self.pids = {name: pids for name, pids in server_pids(ports).items() if pids}
        if worker_pids:
            self.pids["worker"] = list(worker_pids)
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
