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

import hashlib
import hmac
import secrets
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from interest_stream.streams.errors import StoreRefusedError
from interest_stream.streams.interest.profile import UserProfile

EMBEDDED = "embedded"
"""The fence of writers that read no Kafka partition (the embedded mode, tools)."""


ALL_FENCES = "*"
"""Names every fence at once: an erasure that cannot tell the user's partition fences out
all writers (each re-reads before its next write)."""


ERASURE_REASONS = ("user-request", "legal-obligation", "retention-expired", "test", "other")
"""What an erasure record says of why: a code, never free text (which could name people)."""

ERASURE_KEY_SETTING = "erasure_key"
"""Where a store keeps the key of its erasure records when the settings give none."""

ERASURE_FINGERPRINT_SETTING = "erasure_key_fingerprint"
"""A fingerprint of the key the store's erasure records were written with."""


def erasure_subject(user_id: str, key: bytes) -> str:
    """What an erasure record keeps of a user id: a keyed hash (HMAC-SHA256, hex).

    Enough to drop the user's replayed events, and no list of who asked to be forgotten.

    Args:
        user_id: The erased user.
        key: The erasure records' key (`erasure_key`).

    Returns:
        64 hex digits.
    """
    return hmac.new(key, user_id.encode(), hashlib.sha256).hexdigest()


def erasure_key(configured: str | None, keep_setting: Callable[[str, str], str]) -> bytes:
    """The erasure records' key.

    The configured secret (ERASURE_KEY), else a random key the store keeps for every
    process that uses it (then whoever reads the store's settings can test a given id:
    set ERASURE_KEY in production).

    Args:
        configured: ERASURE_KEY, if set.
        keep_setting: The store's `keep_setting`.

    Returns:
        The key's bytes.

    Raises:
        StoreRefusedError: The key is not the one the store's records were written with.
    """
    key = (configured or keep_setting(ERASURE_KEY_SETTING, secrets.token_hex(32))).encode()
    # Records keyed with one key are unreachable under another: a changed ERASURE_KEY
    # would silently forget every erasure, so the store keeps the key's fingerprint.
    fingerprint = hmac.new(key, b"interest-stream erasure key", hashlib.sha256).hexdigest()[:16]
    if keep_setting(ERASURE_FINGERPRINT_SETTING, fingerprint) != fingerprint:
        raise StoreRefusedError(
            "ERASURE_KEY is not the key this store's erasure records were written with:"
            " set the original key (with another, erased users' replayed events would be"
            " applied again)"
        )
    return key


def check_reason(reason: str) -> str:
    """Check an erasure's reason code.

    Args:
        reason: One of `ERASURE_REASONS`.

    Returns:
        `reason`.

    Raises:
        ValueError: Naming the codes, for any other value.
    """
    if reason not in ERASURE_REASONS:
        raise ValueError(f"erasure reason {reason!r}: one of {', '.join(ERASURE_REASONS)}")
    return reason


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
            reason: Why, one of `ERASURE_REASONS`. The record keeps the user id only as
                its keyed hash (`erasure_subject`), with this code.

        Returns:
            True if there was a profile to erase.
        """
        ...

    def bound_erasure(self, user_id: str, before: Mapping[str, int], *, fence: str) -> None:
        """Record on the user's erasure the input offsets it bounds.

        Args:
            user_id: The erased user.
            before: Per input source ("topic:partition"), the first offset after the
                erasure (read right after it fenced the writers out).
            fence: The user's fence, claimed again, so that a writer that read the erasure
                before its bound reads it again.
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
