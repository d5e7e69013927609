"""Progress of a long lab run on the terminal: one rich bar per stage (encoding, folding,
ranking), which says nothing to scripts (--json, or stderr not a terminal)."""

from __future__ import annotations

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from interest_stream.streams.cli.output import console

STAGE_LABELS = {
    "encoding": "encoding texts",
    "validation": "ranking, validation split",
    "profiles": "folding profiles",
    "ranking": "ranking, test split",
}


class StageBars:
    """Call it with (stage, done, total); use it as a context manager around the run."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and console.is_terminal
        self._bar = Progress(
            TextColumn("{task.description:<26}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=not self.enabled,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> StageBars:
        self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        if stage not in self._tasks:
            label = STAGE_LABELS.get(stage, stage)
            self._tasks[stage] = self._bar.add_task(label, total=total)
        self._bar.update(self._tasks[stage], completed=done, total=total)
