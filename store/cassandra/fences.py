"""Write fences on Cassandra: one lightweight transaction per partition per flush, not one
per user, and timestamps that make a fenced-out writer's late writes harmless.

Every user's events arrive on one input partition, and Kafka gives each partition to one
worker at a time; but a worker that lost its partition in a rebalance (a zombie: paused,
partitioned, slow) may still be finishing a flush. Each partition therefore has a row in
`fences` with the epoch of its holder and the last write timestamp handed out under it.

- Claim (before the first read of the partition's profiles): read the row at SERIAL,
  then `UPDATE ... SET epoch = e + 1, last_ts = T IF epoch = e AND last_ts = L` (or
  INSERT IF NOT EXISTS),
  with T above the L it read and the clock. The condition on L matters: the holder may
  advance last_ts between our read and our claim, and a claim stamped below that advance
  would let the holder's flush overwrite the claimant's writes (a racing-writers test
  caught exactly that).
- Flush: `UPDATE ... SET last_ts = T IF epoch = mine` with T = max(clock, my last + 1).
  Applied: every write of the flush carries `USING TIMESTAMP T`. Not applied: someone
  claimed the partition since; the flush's writes for it are lost, the holder is dropped,
  and the caller re-reads and claims again.

Why that is enough: a claim reads last_ts, which covers every timestamp the previous holder
may still be writing with (its flush advanced last_ts before writing), and takes a larger
one. Cassandra keeps, per cell, the value with the highest timestamp, so the new holder's
writes win over anything the old holder lands later, whatever the order of arrival and
whatever the clocks. Readers of the partition after a claim may see the old holder's last
flush or not; the events of that flush were not committed to Kafka (its commit fails after
the rebalance), so the new holder gets them again and dedups against what it reads.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any

from interest_stream.store.cassandra.connect import Requests, describe_error, refused
from interest_stream.store.cassandra.statements import Statements
from interest_stream.streams.errors import StoreError

log = logging.getLogger(__name__)

_CLAIM_ATTEMPTS = 8


def clock_us() -> int:
    """Wall clock in microseconds, Cassandra's timestamp unit."""
    return time.time_ns() // 1000


@dataclass
class Hold:
    """A fence this writer holds: the epoch it claimed and the last timestamp it took."""

    epoch: int
    last_ts: int


class Fences:
    """The fences one store instance holds; used from one thread at a time (the batch
    thread, or a command), like the store's writes."""

    def __init__(self, requests: Requests, statements: Statements, keyspace: str) -> None:
        self._requests = requests
        self._statements = statements
        self._keyspace = keyspace
        self._held: dict[str, Hold] = {}
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.claims = 0
        self.losses = 0

    def claim(self, fences: set[str]) -> set[str]:
        """Hold each fence before the profiles under it are read: the ones held are kept
        (a loss shows at the next flush), the others are claimed now. Returns those."""
        claimed = {name for name in fences if name not in self._held}
        for name in sorted(claimed):
            self._claim(name)
        return claimed

    def timestamps(self, fences: set[str]) -> dict[str, int | None]:
        """For each fence: the timestamp this flush writes with, or None if this writer
        does not hold it (claimed away, or never claimed): its writes are lost. A flush never
        claims: whatever it writes was read under a claim (`claim`), so a write folded onto
        a read made before another writer's claim can never land."""
        stamps: dict[str, int | None] = {}
        advancing = [name for name in sorted(fences) if name in self._held]
        for name in sorted(fences - set(advancing)):
            stamps[name] = None
        if advancing:
            wanted = {name: max(clock_us(), self._held[name].last_ts + 1) for name in advancing}
            statements = [
                self._statements.advance_fence.bind((wanted[n], n, self._held[n].epoch))
                for n in advancing
            ]
            for name, result in zip(advancing, self._requests.run(statements), strict=True):
                stamps[name] = self._advanced(name, wanted[name], result)
        return stamps

    def _advanced(self, name: str, wanted: int, result: Any) -> int | None:
        hold = self._held[name]
        if isinstance(result, BaseException):
            if refused(result):
                raise self._error(f"advancing fence {name}", result)
            # Unknown outcome (timeout, lost connection): a SERIAL read finishes any round
            # in flight and tells what holds.
            row = self._read(name)
            if row is not None and row[0] == hold.epoch and row[2] != wanted:
                # Still ours, but this round did not commit: the flush is retried whole.
                raise self._error(f"advancing fence {name}", result)
            applied = row is not None and row[0] == hold.epoch
        else:
            applied = bool(result.was_applied)
        if applied:
            hold.last_ts = wanted
            return wanted
        del self._held[name]
        self.losses += 1
        log.info("fence %s was claimed by another writer; re-reading its users", name)
        return None

    def _read(self, name: str) -> tuple[int, str, int] | None:
        result = self._requests.run([self._statements.read_fence.bind((name,))])[0]
        if isinstance(result, BaseException):
            raise self._error(f"reading fence {name}", result)
        row = result.one()
        return None if row is None else (int(row[0]), str(row[1]), int(row[2] or 0))

    def _claim(self, name: str) -> Hold:
        """Take the fence: the next epoch and a timestamp above every one handed out."""
        for _ in range(_CLAIM_ATTEMPTS):
            current = self._read(name)
            if current is None:
                stamp = clock_us()
                statement = self._statements.create_fence.bind((name, self.owner, stamp))
                epoch = 1
            else:
                epoch = current[0] + 1
                stamp = max(clock_us(), current[2] + 1)
                statement = self._statements.claim_fence.bind(
                    (epoch, self.owner, stamp, name, current[0], current[2])
                )
            result = self._requests.run([statement])[0]
            if not isinstance(result, BaseException) and not bool(result.was_applied):
                continue  # another writer claimed it between our read and our write
            if isinstance(result, BaseException):
                if refused(result):  # no permission: asking again gives the same answer
                    raise self._error(f"claiming fence {name}", result)
                row = self._read(name)  # did our round commit after all?
                if row is None or (row[0], row[1]) != (epoch, self.owner):
                    continue
            self._held[name] = Hold(epoch, stamp)
            self.claims += 1
            return self._held[name]
        raise StoreError(
            f"Cassandra ({self._keyspace}): fence {name} is contended: could not claim it"
            f" in {_CLAIM_ATTEMPTS} tries"
        )

    def claim_away(self, name: str) -> int:
        """Claim the fence for a one-off write (an erasure) and return its timestamp: the
        holder's next flush fails its check, so it re-reads before writing again."""
        self._held.pop(name, None)
        return self._claim(name).last_ts

    def names(self) -> list[str]:
        """Every fence in the keyspace (an erasure that fences out all writers)."""
        result = self._requests.run([self._statements.list_fences.bind(())])[0]
        if isinstance(result, BaseException):
            raise self._error("listing fences", result)
        return sorted(str(row[0]) for row in result)

    def held(self) -> set[str]:
        """The fences this writer believes it holds (another may have claimed one since)."""
        return set(self._held)

    def forget(self) -> None:
        """Drop every hold (after an error whose outcome is unknown)."""
        self._held.clear()

    def _error(self, action: str, exc: BaseException) -> StoreError:
        return StoreError(
            f"Cassandra {action} ({self._keyspace}): {describe_error(exc)}",
            retriable=not refused(exc),
        )
