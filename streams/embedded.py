"""The embedded mode: a source in, the batch core, a store out, rejects to a file.

Same core as the streaming worker; the differences are only where records come from
(a file, stdin or the demo) and where rejects go (a JSONL file instead of the DLQ topic).
"""

from __future__ import annotations

import base64
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from interest_stream.schemas.records import Rejection
from interest_stream.streams.core.batch import BatchCore, BatchOutcome
from interest_stream.streams.core.sources import Source, batched


@dataclass
class RunSummary:
    """Totals of one embedded run."""

    records: int = 0
    applied: int = 0
    duplicates: int = 0
    rejected: int = 0
    reject_reasons: Counter[str] = field(default_factory=Counter)
    users: set[str] = field(default_factory=set)
    writes: int = 0
    texts_encoded: int = 0
    encode_seconds: float = 0.0
    seconds: float = 0.0
    first_rejects: list[str] = field(default_factory=list)

    def add(self, batch_size: int, outcome: BatchOutcome) -> None:
        self.records += batch_size
        self.applied += outcome.applied
        self.duplicates += outcome.duplicates
        self.rejected += len(outcome.rejects)
        self.reject_reasons.update(_reason_kind(r.reason) for r in outcome.rejects)
        for rejection in outcome.rejects[: max(0, 5 - len(self.first_rejects))]:
            self.first_rejects.append(rejection.located())
        self.users.update(update.user_id for update in outcome.updates)
        self.writes += outcome.writes
        self.texts_encoded += outcome.texts_encoded
        self.encode_seconds += outcome.encode_seconds

    def report(self) -> dict[str, Any]:
        """The counters as JSON-ready data, with the rates."""
        data = asdict(self)
        data.update(
            users_updated=len(data.pop("users")),
            reject_reasons=dict(self.reject_reasons.most_common()),
            encoder_texts_per_s=(
                round(self.texts_encoded / self.encode_seconds, 1) if self.encode_seconds else None
            ),
            events_per_s=round(self.records / self.seconds, 1) if self.seconds else None,
            seconds=round(self.seconds, 3),
            encode_seconds=round(self.encode_seconds, 3),
        )
        return data


def _reason_kind(reason: str) -> str:
    """Group reasons for the summary: 'field 'ts': before 2000...' -> "field 'ts'"."""
    return reason.split(":", 1)[0]


def rejection_record(rejection: Rejection) -> dict[str, Any]:
    """A rejection as one JSON line: the original bytes (base64) and where they came from."""
    try:
        text: str | None = rejection.raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    return {
        "source": rejection.origin.source,
        "offset": rejection.origin.offset,
        "topic": rejection.origin.topic,
        "partition": rejection.origin.partition,
        "reason": rejection.reason,
        "raw_base64": base64.b64encode(rejection.raw).decode("ascii"),
        "raw_text": text[:2000] if text is not None else None,
    }


def run_embedded(
    source: Source,
    core: BatchCore,
    *,
    batch_size: int,
    rejects_path: Path,
    on_batch: Callable[[int, BatchOutcome], None] | None = None,
) -> RunSummary:
    """Process the whole source; rejected records are appended to `rejects_path`."""
    summary = RunSummary()
    started = time.perf_counter()
    rejects_file: IO[str] | None = None
    try:
        for batch in batched(source.records(), batch_size):
            outcome = core.process(batch)
            if outcome.rejects:
                if rejects_file is None:
                    rejects_path.parent.mkdir(parents=True, exist_ok=True)
                    rejects_file = rejects_path.open("a", encoding="utf-8")
                for rejection in outcome.rejects:
                    rejects_file.write(json.dumps(rejection_record(rejection)) + "\n")
                rejects_file.flush()
            summary.add(len(batch), outcome)
            if on_batch is not None:
                on_batch(len(batch), outcome)
    finally:
        if rejects_file is not None:
            rejects_file.close()
        summary.seconds = time.perf_counter() - started
    return summary
