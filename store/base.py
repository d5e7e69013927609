"""The storage boundary: `ProfileStore`, which every backend (SQLite, Cassandra) satisfies.

Guarantees a backend must give, checked by the contract tests over every backend:
`apply` writes each profile only if the stored version still equals the expected one
(0 = absent), so two writers racing on a user cannot overwrite each other; `get` returns
exactly what the last winning write stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from interest_stream.streams.model.profile import UserProfile


@dataclass(frozen=True, slots=True)
class ProfileWrite:
    """A new profile to store if the stored version is still `expected_version`."""

    profile: UserProfile
    expected_version: int


@dataclass(frozen=True)
class ApplyResult:
    """Which writes won and which lost their version fence."""

    won: tuple[str, ...]
    lost: tuple[str, ...]


@runtime_checkable
class ProfileStore(Protocol):
    """Where profiles live. Writes are fenced by version; all methods may raise StoreError."""

    def get(self, user_ids: Sequence[str]) -> dict[str, UserProfile]:
        """Stored profiles of the given users; absent users are left out."""
        ...

    def apply(self, writes: Sequence[ProfileWrite]) -> ApplyResult:
        """Store each profile whose stored version equals its expected version."""
        ...

    def delete(self, user_id: str) -> bool:
        """Erase a user; True if there was something to erase."""
        ...

    def user_ids(self, limit: int | None = None) -> list[str]:
        """Stored user ids, sorted (for listings and comparisons, not hot paths)."""
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
