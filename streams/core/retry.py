"""One retry policy for every loop of the worker (folds, flushes, publishes, items).

A failure is retried only if the same request may succeed later: the store or the brokers
unreachable, overloaded, electing a leader, timing out. A refusal (no permission, a record
too large, an invalid request, a row this version cannot read) fails the same way every
time and is raised at once. Retries back off (0.5 s doubling to 30 s) and give up after a
bounded time (`retry_budget_s`, kept below the consumer's poll interval), raising a
non-retriable error with one line that names the operation and the last failure: the
worker then stops with its batch unacknowledged, instead of blocking its partitions (and
every rebalance of the group) for ever.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from interest_stream.streams.errors import BrokerError, InterestStreamError, StoreError

log = logging.getLogger(__name__)
T = TypeVar("T")


def broker_retriable(exc: BaseException) -> bool:
    """Whether a Kafka client error may pass if tried again: the broker said so, or it
    could not be reached in time. Faust wraps what `producer.send()` raises (timeouts and
    unknown partitions included) in ProducerSendError: the cause is what counts."""
    try:
        from aiokafka.errors import KafkaError, KafkaTimeoutError
    except ImportError:  # pragma: no cover - the worker always has aiokafka
        return False
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, KafkaTimeoutError | asyncio.TimeoutError | TimeoutError):
            return True
        if isinstance(current, KafkaError):
            return bool(current.retriable)
        current = current.__cause__
    return False


def retriable(exc: BaseException) -> bool:
    """Our errors say it themselves (`retriable`); Kafka client errors by their kind."""
    if isinstance(exc, StoreError | BrokerError):
        return exc.retriable
    if isinstance(exc, InterestStreamError):
        return False
    return broker_retriable(exc)


@dataclass(frozen=True)
class RetryPolicy:
    """Back-off and a time budget for one kind of work; see the module doc."""

    budget_s: float = 300.0
    first_delay_s: float = 0.5
    max_delay_s: float = 30.0

    async def run(
        self,
        label: str,
        attempt: Callable[[], Awaitable[T]],
        on_failure: Callable[[BaseException], None] | None = None,
    ) -> T:
        """Await `attempt()` until it succeeds, a failure is permanent or the budget is
        spent; raises StoreError/BrokerError (retriable=False) naming `label` then."""
        started = time.monotonic()
        delay = self.first_delay_s
        while True:
            try:
                return await attempt()
            except Exception as exc:
                if on_failure is not None:
                    on_failure(exc)
                if not retriable(exc):
                    message = f"{label} failed permanently: {_one_line(exc)}"
                elif time.monotonic() - started + delay > self.budget_s:
                    spent = time.monotonic() - started
                    message = (
                        f"{label} still failing after {spent:.0f} s, giving up: {_one_line(exc)}"
                    )
                else:
                    message = ""
                if message:
                    log.error("%s", message)
                    if isinstance(exc, StoreError):
                        raise StoreError(message, retriable=False) from exc
                    if isinstance(exc, BrokerError) or _from_kafka(exc):
                        raise BrokerError(message, retriable=False) from exc
                    raise
                log.warning("%s failed (%s); retrying in %.1f s", label, _one_line(exc), delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_delay_s)


def _one_line(exc: BaseException) -> str:
    text = str(exc) if isinstance(exc, InterestStreamError) else repr(exc)
    return " ".join(text.split())


def _from_kafka(exc: BaseException) -> bool:
    """An error of a Kafka client (aiokafka, Faust's producer, kafka-python)."""
    return type(exc).__module__.split(".", 1)[0] in ("aiokafka", "faust", "kafka")
