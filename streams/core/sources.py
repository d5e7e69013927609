"""Event sources for the embedded mode: JSONL files, stdin and the bundled demo workload.

A source yields `RawRecord`s with a stable `source` name and a monotonically increasing
offset (the line number), which is what the per-source high-water dedup keys on: running
the same file twice into one store applies nothing the second time.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any, Protocol

from interest_stream.schemas.records import Provenance, RawRecord
from interest_stream.streams.errors import SourceError


class Source(Protocol):
    """Where the embedded mode reads events from."""

    name: str

    def records(self) -> Iterator[RawRecord]: ...


class JsonlSource:
    """One event per line of a file (or of stdin when the path is '-')."""

    def __init__(self, path: str) -> None:
        self.path = path
        if path == "-":
            self.name = "stdin"
            return
        resolved = Path(path).expanduser().resolve()
        if not resolved.is_file():
            raise SourceError(f"{path}: no such file")
        try:
            resolved.open("rb").close()
        except OSError as exc:
            raise SourceError(f"{path}: cannot read ({exc.strerror})") from exc
        self.name = f"file:{resolved}"
        self._resolved = resolved

    def size_bytes(self) -> int | None:
        return None if self.path == "-" else self._resolved.stat().st_size

    def count_lines(self) -> int | None:
        """Non-blank lines of the file (for a progress bar's total); None for stdin."""
        if self.path == "-":
            return None
        with self._resolved.open("rb") as counting:
            return sum(1 for line in counting if line.strip())

    def records(self) -> Iterator[RawRecord]:
        stream: IO[bytes] = sys.stdin.buffer if self.path == "-" else self._resolved.open("rb")
        try:
            for line_number, line in enumerate(stream, start=1):
                value = line.rstrip(b"\r\n")
                if value.strip():
                    yield RawRecord(value, Provenance(self.name, line_number))
        except OSError as exc:
            raise SourceError(f"{self.path}: read failed ({exc.strerror})") from exc
        finally:
            if stream is not sys.stdin.buffer:
                stream.close()


class EventListSource:
    """In-memory events (the bundled demo); offsets are list positions, from 1."""

    def __init__(self, name: str, events: Sequence[dict[str, Any]]) -> None:
        self.name = name
        self._events = events

    def __len__(self) -> int:
        return len(self._events)

    def records(self) -> Iterator[RawRecord]:
        for offset, event in enumerate(self._events, start=1):
            yield RawRecord(json.dumps(event).encode(), Provenance(self.name, offset))


def batched(records: Iterator[RawRecord], size: int) -> Iterator[list[RawRecord]]:
    batch: list[RawRecord] = []
    for record in records:
        batch.append(record)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def texts_of(records: Iterator[RawRecord]) -> Iterator[str]:
    """The `text` field of every record that is a JSON object with one (events or catalogue
    items); anything else is passed over here and judged where the records are applied."""
    for record in records:
        try:
            value = json.loads(record.value)
        except ValueError:
            continue
        if isinstance(value, dict) and isinstance(value.get("text"), str):
            yield value["text"]
