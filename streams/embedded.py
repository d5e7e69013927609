"""The embedded mode: a source in, the batch core, a store out, rejects to a file.

Same core as the streaming worker; the differences are only where records come from
(a file, stdin or the demo) and where rejects go (a JSONL file instead of the DLQ topic).
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from interest_stream.encoders.base import Encoder, Vectors, Wrapping
from interest_stream.schemas.events import reason_kind
from interest_stream.schemas.records import Rejection
from interest_stream.streams.core.batch import BatchCore, BatchOutcome
from interest_stream.streams.core.sources import Source, batched
from interest_stream.streams.settings import env_name

# `run` and `evaluate` fail when more than this fraction of the records is rejected for one
# reason: that is a setting or a producer to fix, not a few bad lines.
REJECT_ALARM_FRACTION = 0.01


class DistinctTexts(Wrapping[Encoder]):
    """An encoder that counts the distinct texts it is asked to encode, then encodes them.

    The batch core reports texts per batch, so a text seen in many batches is counted many
    times; wrapped around the core's encoder this counts each text once (8-byte digests;
    past `cap` distinct texts it stops adding and reports a lower bound).
    """

    def __init__(self, inner: Encoder, cap: int = 2_000_000) -> None:
        super().__init__(inner)
        self._cap = cap
        self._seen: set[bytes] = set()
        self.capped = False

    @property
    def count(self) -> int:
        return len(self._seen)

    def encode(self, texts: Sequence[str]) -> Vectors:
        for text in texts:
            if len(self._seen) >= self._cap:
                self.capped = True
                break
            self._seen.add(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest())
        return self._inner.encode(texts)


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
    # Texts sent to the encoder summed over batches: a text in several batches counts once
    # per batch (repeats are served by the encoder's cache). `distinct_texts` counts it once.
    texts_encoded: int = 0
    distinct_texts: int | None = None
    distinct_texts_capped: bool = False
    encode_seconds: float = 0.0
    seconds: float = 0.0
    first_rejects: list[str] = field(default_factory=list)

    def add(self, batch_size: int, outcome: BatchOutcome) -> None:
        self.records += batch_size
        self.applied += outcome.applied
        self.duplicates += outcome.duplicates
        self.rejected += len(outcome.rejects)
        self.reject_reasons.update(reason_kind(r.reason) for r in outcome.rejects)
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


def rejection_alarms(
    reasons: Mapping[str, int], records: int, threshold: float = REJECT_ALARM_FRACTION
) -> list[str]:
    """One line per rejection reason that hit more than `threshold` of the records, naming
    the setting or the fix that would change it."""
    lines = []
    for kind, count in sorted(reasons.items(), key=lambda item: (-item[1], item[0])):
        if records and count / records > threshold:
            hint = _remedy(kind)
            lines.append(
                f"{100 * count / records:.1f}% of events ({count:,} of {records:,}) rejected:"
                f" {kind}" + (f"; {hint}" if hint else "")
            )
    return lines


def _remedy(kind: str) -> str:
    if kind.startswith("field 'ts': before"):
        return f"set {env_name('min_event_time')} to accept older events"
    if kind.startswith("field 'ts': more than"):
        return (
            f"check the producers' clocks, or set {env_name('max_future_skew_s')} to allow"
            " more skew"
        )
    if kind.startswith("field 'ts'"):
        return "ts must be RFC 3339 with an offset, or integer epoch milliseconds"
    return ""


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
    """Process the whole source; rejected records are appended to `rejects_path`.

    When the core's encoder is a `DistinctTexts`, the summary reports distinct texts too.
    """
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
        if isinstance(core.encoder, DistinctTexts):
            summary.distinct_texts = core.encoder.count
            summary.distinct_texts_capped = core.encoder.capped
    return summary
