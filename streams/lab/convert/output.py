"""What every converter shares: writing events one line at a time while counting what was
written and what was skipped (and why), with no row of the input kept in memory.

The counts a conversion keeps are bounded by the number of distinct users and rating
values, never by the number of rows: a 25M-rating log converts in the memory of its user
ids. Event times are written as RFC 3339 (UTC): an integer `ts` means epoch milliseconds
in the event contract, and unix seconds written as-is would land in January 1970.
"""

from __future__ import annotations

import json
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from interest_stream.streams.errors import SourceError

# The event contract's text bound (characters, after trim and NFC).
MAX_TEXT = 4096


def rfc3339(seconds: float) -> str:
    """Epoch seconds as RFC 3339 UTC, whole seconds where the input had them."""
    when = datetime.fromtimestamp(seconds, tz=UTC)
    text = when.isoformat(timespec="seconds" if seconds == int(seconds) else "milliseconds")
    return text.replace("+00:00", "Z")


def fit_text(text: str) -> tuple[str, bool]:
    """The text as the contract reads it (trimmed, NFC), cut to MAX_TEXT characters at the
    last sentence or word end before the bound; True when it had to be cut."""
    clean = unicodedata.normalize("NFC", text).strip()
    if len(clean) <= MAX_TEXT:
        return clean, False
    head = clean[:MAX_TEXT]
    cut = max(head.rfind(". "), head.rfind("! "), head.rfind("? "))
    if cut < MAX_TEXT // 2:
        cut = head.rfind(" ")
    return (head[: cut + 1] if cut > 0 else head).strip(), True


@dataclass
class Conversion:
    """Counts of one conversion: events by kind, users, ratings, times, skips by reason."""

    events: int = 0
    users: set[str] = field(default_factory=set)
    items: int = 0
    first: float | None = None
    last: float | None = None
    ratings: Counter[float] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    adjusted: Counter[str] = field(default_factory=Counter)

    def skip(self, reason: str) -> None:
        self.skipped[reason] += 1

    def saw(self, user_id: str, seconds: float, rating: float | None, kind: str) -> None:
        self.events += 1
        self.users.add(user_id)
        self.kinds[kind] += 1
        self.first = seconds if self.first is None else min(self.first, seconds)
        self.last = seconds if self.last is None else max(self.last, seconds)
        if rating is not None:
            self.ratings[rating] += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "users": len(self.users),
            "items": self.items,
            "kinds": dict(self.kinds),
            "first": None if self.first is None else rfc3339(self.first),
            "last": None if self.last is None else rfc3339(self.last),
            "ratings": {str(k): v for k, v in sorted(self.ratings.items())},
            "skipped": dict(self.skipped),
            "adjusted": dict(self.adjusted),
        }


class JsonLines:
    """A JSONL file written one record at a time (the parent folder is created)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: IO[str] | None = None

    def __enter__(self) -> JsonLines:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self.path.open("w", encoding="utf-8")
        except OSError as exc:
            raise SourceError(f"cannot write {self.path}: {exc.strerror or exc}") from exc
        return self

    def write(self, record: dict[str, Any]) -> None:
        assert self._handle is not None, "use JsonLines as a context manager"
        self._handle.write(json.dumps(record, ensure_ascii=False) + "\n")

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._handle is not None:
            self._handle.close()
