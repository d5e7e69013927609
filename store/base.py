"""The storage boundary: `ProfileStore`, which every backend (SQLite, Cassandra) satisfies.

Guarantees a backend must give, checked by the contract tests over every backend:

- `get` returns exactly what the last winning write stored.
- Writes are fenced, and a writer claims, then reads. A writer names a fence with each
  write: the Kafka partition its user's events come from, or `EMBEDDED`. Before it reads
  the profiles it will write, it claims their fences (`claim`); a write under a fence it
  does not hold (never claimed, or claimed since by another writer: a worker that took the
  partition over in a rebalance, or `erase`) is lost and reported in `ApplyResult.lost`:
  the caller drops what it cached, claims again, reads again and re-folds. A write is
  therefore always folded onto a read made under the writer's current claim, and can never
  overwrite what a later claimant wrote or erased.
- A backend may also refuse a write whose `expected_version` is no longer the stored one
  (SQLite does; Cassandra relies on the fence alone, which is enough when the fence is the
  user's partition).
- `erase` removes every stored trace of a user's profile and records the erasure, so that
  events of the user from before it are never applied again (`erased`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from interest_stream.streams.model.profile import UserProfile

EMBEDDED = "embedded"
"""The fence of writers that read no Kafka partition (the embedded mode, tools)."""


ALL_FENCES = "*"
"""Names every fence at once: an erasure that cannot tell the user's partition fences out
all writers (each re-reads before its next write)."""


def partition_fence(partition: int) -> str:
    """The fence of the users whose events arrive on input partition `partition`."""
    return f"partition:{partition}"


@dataclass(frozen=True, slots=True)
class ProfileWrite:
    """A new profile, the stored version it was folded onto (0 = new) and its fence.

    `domains_changed` names the per-domain views the fold changed (None: all of them) and
    `domains_dropped` the ones it folded away, so a backend that keeps per-domain rows for
    readers writes only those.
    """

    profile: UserProfile
    expected_version: int
    fence: str = EMBEDDED
    domains_changed: tuple[str, ...] | None = None
    domains_dropped: tuple[str, ...] = ()


@dataclass(frozen=True)
class ErasureRecord:
    """When a user was erased and, per input source ("topic:partition"), the first offset
    after the erasure (empty where no Kafka offsets were read: the time bounds it then)."""

    at: float
    before: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ApplyResult:
    """Which writes won and which were lost (fence claimed away, or version moved), and
    how many bytes the winners put into the store."""

    won: tuple[str, ...]
    lost: tuple[str, ...]
    bytes_written: int = 0


@runtime_checkable
class ProfileStore(Protocol):
    """Where profiles live; all methods may raise StoreError."""

    def get(self, user_ids: Sequence[str]) -> dict[str, UserProfile]:
        """Stored profiles of the given users; absent (and erased) users are left out."""
        ...

    def erased(self, user_ids: Sequence[str]) -> dict[str, ErasureRecord]:
        """For users that were erased: their (latest) erasure."""
        ...

    def claim(self, fences: Collection[str]) -> set[str]:
        """Hold `fences` before reading the profiles under them: fences this writer holds
        are kept, the others are claimed now (fencing out their holders); returns those,
        whose users must be read from the store, not from anything cached before."""
        ...

    def apply(self, writes: Sequence[ProfileWrite]) -> ApplyResult:
        """Store each profile whose writer still holds its fence (see the module doc)."""
        ...

    def erase(self, user_id: str, *, fence: str, at: float, reason: str) -> bool:
        """Erase a user's profile and everything derived from it, fencing out the writer
        of `fence` (the user's partition), and record the erasure; True if there was a
        profile. Idempotent."""
        ...

    def bound_erasure(self, user_id: str, before: Mapping[str, int]) -> None:
        """Record on the user's erasure the input offsets it bounds (read after the erasure:
        per source, the first offset after it)."""
        ...

    def user_ids(self, limit: int | None = None) -> list[str]:
        """Stored user ids, sorted (for listings and comparisons, not hot paths)."""
        ...

    def setting(self, key: str) -> str | None:
        """A value the store keeps for every process that uses it (e.g. calibration)."""
        ...

    def keep_setting(self, key: str, value: str) -> str:
        """Store `value` under `key` unless one is there; return the value that holds."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class StoredItem:
    """A catalogue item with its embedding, so clicks can carry only the item id."""

    item_id: str
    text: str
    domain: str | None
    model_id: str
    vector: npt.NDArray[np.float32]


@runtime_checkable
class ItemCatalog(Protocol):
    """Item texts and embeddings, written from the `items` topic (last write wins)."""

    def get_items(self, item_ids: Sequence[str]) -> dict[str, StoredItem]:
        """Stored items among `item_ids`; unknown ids are left out."""
        ...

    def put_items(self, items: Sequence[StoredItem]) -> None:
        """Insert or replace items (idempotent: replaying the topic is harmless)."""
        ...

    def delete_item(self, item_id: str) -> bool: ...
