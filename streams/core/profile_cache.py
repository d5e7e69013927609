"""The profiles this process last stored or read, so a batch does not read them back.

A worker owns its partitions, so between rebalances it is the only writer of its users'
profiles: the profile it stored last is the stored profile, and reading it again costs a
store round trip and the decoding of a large row for nothing. The cache holds those
profiles (least recently used evicted beyond `capacity`).

It is safe because the store's write fence, not the cache, decides what is stored: on
Cassandra the per-partition fence (store/cassandra/fences.py), on SQLite a table of epochs
and the profile version, checked in the write's transaction. A cached profile can only be
stale if another writer wrote the user since, and that takes claiming the user's partition
(a rebalance, an erasure); our next flush under the old claim then loses its fence
(`ApplyResult.lost`), and the core empties the cache, re-reads the store and folds the
events again. Dedup against a
stale profile is safe too: its applied offsets and recent event ids are a subset of what
the newer stored profile had applied, so nothing it skips is new.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping

from interest_stream.streams.interest.profile import UserProfile


class ProfileCache:
    """LRU of `UserProfile`s by user id; `capacity` 0 keeps nothing.

    Used from one thread, except `invalidate`, which any thread may call (a rebalance
    callback): it only raises a flag, and the next `lookup` empties the cache.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError("capacity must be >= 0")
        self.capacity = capacity
        self._entries: OrderedDict[str, UserProfile] = OrderedDict()
        self.hits = 0
        self.misses = 0
        self._invalid = False

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, user_ids: Iterable[str]) -> tuple[dict[str, UserProfile], list[str]]:
        """Cached profiles of `user_ids`, and the ids the cache does not hold."""
        if self._invalid:
            self._invalid = False
            self._entries.clear()
        found: dict[str, UserProfile] = {}
        missing: list[str] = []
        for user_id in user_ids:
            profile = self._entries.get(user_id)
            if profile is None:
                missing.append(user_id)
            else:
                self._entries.move_to_end(user_id)
                found[user_id] = profile
        self.hits += len(found)
        self.misses += len(missing)
        return found, missing

    def put(self, profiles: Mapping[str, UserProfile]) -> None:
        """Remember profiles just read from or stored in the store."""
        if not self.capacity:
            return
        for user_id, profile in profiles.items():
            self._entries[user_id] = profile
            self._entries.move_to_end(user_id)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def drop(self, user_ids: Iterable[str]) -> None:
        """Forget users whose cached profile proved stale (a lost fence)."""
        for user_id in user_ids:
            self._entries.pop(user_id, None)

    def invalidate(self) -> None:
        """Empty the cache before its next lookup: other writers may own these users now."""
        self._invalid = True
