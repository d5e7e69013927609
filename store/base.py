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
    """The fence of the users whose events arrive on one input partition.

    Args:
        partition: The Kafka input partition (the same number on every input topic).

    Returns:
        The fence name, `partition:<n>`.
    """
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
    """When a user was erased, and the input offsets that bound the erasure.

    `before` maps each input source ("topic:partition") to the first offset after the
    erasure; it is empty where no Kafka offsets were read, and the time bounds it then.
    """

    at: float
    before: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ApplyResult:
    """Which writes won and which were lost, and what the winners cost.

    A write is lost when its fence was claimed away or the stored version moved.
    """

    won: tuple[str, ...]
    lost: tuple[str, ...]
    bytes_written: int = 0


@runtime_checkable
class ProfileStore(Protocol):
    """Where profiles live; all methods may raise StoreError."""

    def get(self, user_ids: Sequence[str]) -> dict[str, UserProfile]:
        """Read stored profiles.

        Args:
            user_ids: The users to read.

        Returns:
            Their profiles by user id; absent (and erased) users are left out.
        """
        ...

    def erased(self, user_ids: Sequence[str]) -> dict[str, ErasureRecord]:
        """Tell which users were erased, and when.

        Args:
            user_ids: The users to look up.

        Returns:
            For the erased ones, their latest erasure: its time and the input offsets it
            bounds.
        """
        ...

    def claim(self, fences: Collection[str]) -> set[str]:
        """Hold fences before reading the profiles under them.

        Fences this writer holds are kept, the others are claimed now (fencing out their
        holders).

        Args:
            fences: The fences of the users about to be read and written.

        Returns:
            The fences claimed now, whose users must be read from the store, not from
            anything cached before.
        """
        ...

    def apply(self, writes: Sequence[ProfileWrite]) -> ApplyResult:
        """Store each profile whose writer still holds its fence (see the module doc).

        Args:
            writes: At most one write per user.

        Returns:
            The users whose writes won and lost, and the bytes written.
        """
        ...

    def erase(self, user_id: str, *, fence: str, at: float, reason: str) -> bool:
        """Erase a user's profile and everything derived from it, and record the erasure.

        Idempotent.

        Args:
            user_id: The user to erase.
            fence: The user's fence (its partition), claimed so that its writer re-reads
                before writing again; `ALL_FENCES` when it is not known.
            at: Time of the erasure, epoch seconds: older events are never applied again.
            reason: Why, kept with the erasure record.

        Returns:
            True if there was a profile to erase.
        """
        ...

    def bound_erasure(self, user_id: str, before: Mapping[str, int]) -> None:
        """Record on the user's erasure the input offsets it bounds.

        Args:
            user_id: The erased user.
            before: Per input source ("topic:partition"), the first offset after the
                erasure (read right after it fenced the writers out).
        """
        ...

    def user_ids(self, limit: int | None = None) -> list[str]:
        """List stored users (for listings and comparisons, not hot paths).

        Args:
            limit: At most this many; None for all.

        Returns:
            User ids, sorted.
        """
        ...

    def setting(self, key: str) -> str | None:
        """Read a value the store keeps for every process that uses it (e.g. calibration).

        Args:
            key: The setting's name.

        Returns:
            Its value, or None when none was kept.
        """
        ...

    def keep_setting(self, key: str, value: str) -> str:
        """Store a value unless one is there already (the first writer wins).

        Args:
            key: The setting's name.
            value: The value to keep if `key` has none.

        Returns:
            The value that holds: `value`, or the one stored before.
        """
        ...

    def close(self) -> None:
        """Release connections and files; the store is unusable afterwards."""
        ...


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
        """Read stored items.

        Args:
            item_ids: The items to read.

        Returns:
            The stored ones by item id; unknown ids are left out.
        """
        ...

    def put_items(self, items: Sequence[StoredItem]) -> None:
        """Insert or replace items (idempotent: replaying the topic is harmless).

        Args:
            items: The items, each with its vector and model id.
        """
        ...

    def delete_item(self, item_id: str) -> bool:
        """Delete an item (its topic record was a tombstone).

        Args:
            item_id: The item to delete.

        Returns:
            True if it was stored.
        """
        ...
