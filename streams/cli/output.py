"""What commands print: the two consoles (results to stdout, messages to stderr), a
progress bar that disappears for scripts, and the tables several commands share."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from interest_stream.schemas.events import printable

console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)


class EventProgress:
    """A rich progress bar with a rate, which degrades to nothing for scripts (--json, or
    stderr not a terminal)."""

    def __init__(self, total: int | None, enabled: bool, unit: str = "events") -> None:
        self._enabled = enabled and console.is_terminal
        self._unit = unit
        self._bar = Progress(
            TextColumn(f"[bold]{unit}"),
            BarColumn(),
            TextColumn("{task.completed:,}/{task.total:,}" if total else "{task.completed:,}"),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            console=console,
            disable=not self._enabled,
        )
        self._total = total

    def __enter__(self) -> Callable[[int], None]:
        self._bar.start()
        task = self._bar.add_task(self._unit, total=self._total, rate="")

        def advance(n: int) -> None:
            self._bar.advance(task, n)
            speed = self._bar.tasks[0].speed
            self._bar.update(task, rate=f"{speed:,.0f}/s" if speed else "")

        return advance

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()


DRIVER_LOGGERS = ("kafka", "cassandra", "aiokafka")


def quiet_driver_logs() -> None:
    """Client commands report a failure as one line; the drivers' own retry warnings and
    tracebacks (one per reconnect attempt) only bury it, unless -v asked for them."""
    if logging.getLogger().getEffectiveLevel() >= logging.WARNING:
        for name in DRIVER_LOGGERS:
            logging.getLogger(name).setLevel(logging.CRITICAL)


@contextmanager
def drivers_quiet_while_connecting() -> Iterator[None]:
    """`quiet_driver_logs` for the connection checks of a long-running command only: the
    worker's later driver warnings (a node down, a retried request) are for its operators."""
    levels = {name: logging.getLogger(name).level for name in DRIVER_LOGGERS}
    quiet_driver_logs()
    try:
        yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def profiles_table(profiles: list[Any]) -> Table:
    """User, version, events, top interests and drift of stored profiles."""
    table = Table(title="profiles", show_lines=False)
    table.add_column("user")
    table.add_column("version", justify="right")
    table.add_column("events", justify="right")
    table.add_column("top interests (weight)")
    table.add_column("drift", justify="right")
    for profile in profiles:
        labels = "\n".join(
            f"{escape(printable(c.label[:60]))} ({c.weight:.2f})" for c in profile.liked[:3]
        )
        drift = profile.drift()
        table.add_row(
            escape(printable(profile.user_id)),
            str(profile.version),
            str(profile.event_count),
            labels,
            "-" if drift is None else f"{drift:.2f}",
        )
    return table
