"""One retry policy that knows retriable from permanent and gives up in bounded time; a
DLQ record that can take any record; a flush that fails keeps what it stored."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from interest_stream.encoders.hashing import HashingEncoder
from interest_stream.schemas.records import Provenance, RawRecord, Rejection, RejectKind
from interest_stream.store import open_store
from interest_stream.store.sqlite import SqliteStore
from interest_stream.streams.core.batch import BatchCore
from interest_stream.streams.core.dead_letters import dead_letter
from interest_stream.streams.core.retry import RetryPolicy, retriable
from interest_stream.streams.errors import (
    BrokerError,
    BrokerRefusedError,
    BrokerUnreachableError,
    StoreError,
    StoreRefusedError,
    TopicLayoutError,
)

NOW = 1_800_000_000.0


def _policy() -> RetryPolicy:
    return RetryPolicy(budget_s=0.05, first_delay_s=0.01, max_delay_s=0.01)


def _failing(errors: list[BaseException]):
    calls: list[int] = []

    async def attempt() -> str:
        calls.append(1)
        if errors:
            raise errors.pop(0)
        return "done"

    return attempt, calls


def test_a_transient_store_error_is_retried_until_it_passes():
    attempt, calls = _failing([StoreError("timeout"), StoreError("timeout")])
    assert asyncio.run(_policy().run("flush", attempt)) == "done"
    assert len(calls) == 3


def test_a_refused_request_is_not_retried():
    attempt, calls = _failing([StoreRefusedError("Unauthorized: no MODIFY on profiles")])
    with pytest.raises(StoreError, match="flush failed permanently: Unauthorized") as error:
        asyncio.run(_policy().run("flush", attempt))
    assert len(calls) == 1 and error.value.retriable is False


def test_retries_give_up_within_the_budget_with_one_line():
    attempt, calls = _failing([StoreError("no host available")] * 1000)
    with pytest.raises(StoreError, match="flush still failing after 0 s, giving up") as error:
        asyncio.run(_policy().run("flush", attempt))
    assert 1 < len(calls) < 1000 and error.value.retriable is False


def test_what_faust_wraps_around_a_send_is_judged_by_its_cause():
    from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError
    from faust.exceptions import ProducerSendError

    def wrapped(cause: BaseException) -> ProducerSendError:
        try:
            raise ProducerSendError(f"Error while sending: {cause!r}") from cause
        except ProducerSendError as exc:
            return exc

    assert retriable(wrapped(KafkaTimeoutError()))
    assert not retriable(wrapped(MessageSizeTooLargeError()))
    attempt, calls = _failing([wrapped(KafkaTimeoutError()), wrapped(MessageSizeTooLargeError())])
    with pytest.raises(BrokerError, match="publish failed permanently"):
        asyncio.run(_policy().run("publish", attempt))
    assert len(calls) == 2


def test_a_programming_error_is_raised_as_it_is():
    attempt, _ = _failing([KeyError("bug")])
    with pytest.raises(KeyError):
        asyncio.run(_policy().run("fold", attempt))


def test_a_record_too_large_for_the_dlq_becomes_a_bounded_reference():
    origin = Provenance("clicks:2", 41, "clicks", 2, b"u")
    small = dead_letter(Rejection(b"{bad", "not JSON", origin, RejectKind.NOT_JSON), max_bytes=1024)
    assert small.value == b"{bad" and not small.truncated
    assert dict(small.headers)["source.offset"] == b"41"
    assert dict(small.headers)["reason.kind"] == b"not_json"
    big = dead_letter(
        Rejection(b"x" * 5000, "not JSON", origin, RejectKind.NOT_JSON), max_bytes=1024
    )
    assert big.truncated and big.value == b"x" * 1024 and big.key == b"u"
    headers = dict(big.headers)
    assert headers["original.bytes"] == b"5000"
    assert b"read it whole from clicks:2 at offset 41" in headers["reason"]


def _records(user: str, count: int, start: int = 1) -> list[RawRecord]:
    return [
        RawRecord.at(
            json.dumps(
                {
                    "event_id": f"{user}-{n}",
                    "user_id": user,
                    "ts": int((NOW - 60 + n) * 1000),
                    "type": "query",
                    "text": f"query {n}",
                }
            ).encode(),
            "f",
            n,
        )
        for n in range(start, start + count)
    ]


def test_a_flush_that_fails_keeps_its_reannouncements_for_the_retry(tmp_path: Path):
    path = tmp_path / "p.db"

    class FailingOnce(SqliteStore):
        """Fails the second write once (a store restart)."""

        applies = 0

        def apply(self, writes):
            self.applies += 1
            if self.applies == 2:
                raise StoreError("connection reset")
            return super().apply(writes)

    core = BatchCore(
        encoder=HashingEncoder(), store=FailingOnce(path), clock=lambda: NOW, reannounce=True
    )
    core.process(_records("a", 2))
    # A crash after the write, before the announcement: the records come again. Then the
    # store fails the flush once; the retry must still announce the stored profile.
    core.fold(_records("a", 2) + _records("b", 1))
    with pytest.raises(StoreError):
        core.flush()
    outcome = core.flush()
    assert [u.user_id for u in outcome.updates] == ["b"]
    assert [(u.user_id, u.version) for u in outcome.reannounced] == [("a", 1)]
    stored = open_store(f"sqlite:///{path}").get(["a", "b"])
    assert stored["a"].event_count == 2 and stored["b"].event_count == 1


def test_broker_failures_are_typed_and_the_policy_reads_their_kind():
    assert retriable(BrokerUnreachableError("cannot reach Kafka at k:9092"))
    for permanent in (
        BrokerRefusedError("Kafka at k:9094 refused the credentials of user 'w'"),
        TopicLayoutError("topic clicks does not exist on k:9092"),
    ):
        assert isinstance(permanent, BrokerError) and not retriable(permanent)
        calls: list[int] = []

        async def attempt(exc: BrokerError = permanent, seen: list[int] = calls) -> None:
            seen.append(1)
            raise exc

        with pytest.raises(BrokerError) as raised:
            asyncio.run(_policy().run("publish", attempt))
        assert not raised.value.retriable
        assert len(calls) == 1  # a permanent failure is not tried again


def test_a_broker_refusal_is_told_from_an_unreachable_broker():
    from kafka.errors import KafkaTimeoutError, TopicAuthorizationFailedError

    from interest_stream.streams.kafka.clients import unreachable
    from interest_stream.streams.settings import load_settings

    settings = load_settings(brokers="127.0.0.1:1")  # nothing listens: no reason to ask for
    down = unreachable(settings, KafkaTimeoutError("Unable to bootstrap"))
    assert isinstance(down, BrokerUnreachableError) and down.retriable
    denied = unreachable(settings, TopicAuthorizationFailedError())
    assert isinstance(denied, BrokerRefusedError) and not denied.retriable
    assert str(denied).startswith("Kafka at 127.0.0.1:1 refused")
