"""Every kind of bad input becomes a rejection with a reason naming the field and rule."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from interest_stream.schemas.events import (
    Event,
    ValidationRules,
    parse_event,
    parse_time_bound,
    reason_kind,
)
from interest_stream.schemas.records import Provenance, Rejection

NOW = 1_780_000_000.0
GOOD = {
    "event_id": "e1",
    "user_id": "u1",
    "ts": "2026-05-01T10:00:00+02:00",
    "type": "review",
    "text": "  Great film about astronauts ",
    "rating": 5,
    "domain": "movies",
    "item_id": "i1",
}


def parse(raw: bytes, **where: object) -> Event | Rejection:
    origin = Provenance("test", 1, **where)  # type: ignore[arg-type]
    return parse_event(raw, origin, now=NOW, rules=ValidationRules())


def with_(**changes: object) -> bytes:
    body = {**GOOD, **changes}
    return json.dumps({k: v for k, v in body.items() if v is not ...}).encode()


def test_a_valid_event_is_normalized():
    event = parse(with_())
    assert isinstance(event, Event)
    assert event.text == "Great film about astronauts"
    assert event.ts == 1_777_622_400.0
    assert parse(with_(ts=1_777_622_400_000)) == event


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[1, 2]", "not a JSON object"),
        (b'"just a string"', "not a JSON object"),
        (with_(event_id=...), "field 'event_id': required"),
        (with_(user_id=...), "field 'user_id': required"),
        (with_(ts=...), "field 'ts': required"),
        (with_(text=...), "field 'text': required"),
        (with_(type=...), "field 'type': required"),
        (with_(event_id=""), "field 'event_id'"),
        (with_(user_id="u" * 129), "field 'user_id'"),
        (with_(event_id=17), "field 'event_id'"),
        (with_(text=""), "field 'text'"),
        (with_(text="   "), "field 'text'"),
        (with_(text="x" * 1_048_576), "field 'text': String should have at most 4096"),
        (with_(text=["list"]), "field 'text'"),
        (with_(ts="yesterday"), "field 'ts'"),
        (with_(ts="2026-05-01T10:00:00"), "field 'ts'"),
        (with_(ts=True), "field 'ts'"),
        (with_(ts=1.5), "field 'ts'"),
        (with_(ts="1969-12-31T23:59:59Z"), "field 'ts': before 1970-01-01"),
        (with_(ts=-1), "field 'ts': before 1970-01-01"),
        (with_(ts=10**400), "field 'ts': Value error, epoch milliseconds out of range"),
        (with_(ts="0000-01-01T00:00:00Z"), "field 'ts'"),
        (with_(ts="2027-06-01T00:00:00Z"), "field 'ts': more than 300 s in the future"),
        (with_(type="purchase"), "field 'type': must be one of"),
        (with_(rating=0), "field 'rating'"),
        (with_(rating=6), "field 'rating'"),
        (with_(rating="5"), "field 'rating'"),
        (with_(type="click"), "only reviews carry a rating"),
        (with_(domain=""), "field 'domain'"),
        (with_(item_id=""), "field 'item_id'"),
    ],
)
def test_bad_input_is_rejected_with_a_precise_reason(raw: bytes, expected: str):
    result = parse(raw)
    assert isinstance(result, Rejection), result
    assert expected in result.reason
    assert result.raw == raw


def test_historical_events_are_accepted_and_the_oldest_time_is_a_rule():
    # A rating log from 1997: real history, accepted by default.
    event = parse(with_(ts="1997-09-20T03:05:10Z"))
    assert isinstance(event, Event) and event.ts == 874_724_710.0
    assert isinstance(parse(with_(ts=0)), Event)  # the epoch itself is a time
    rules = ValidationRules(min_epoch_s=946_684_800.0)
    old = parse_event(with_(ts="1997-09-20T03:05:10Z"), Provenance("t", 1), now=NOW, rules=rules)
    assert isinstance(old, Rejection)
    assert old.reason == "field 'ts': before 2000-01-01 (got '1997-09-20T03:05:10Z')"
    assert reason_kind(old.reason) == "field 'ts': before 2000-01-01"


@pytest.mark.parametrize(
    "raw",
    [
        b'{"ts": 1' + b"0" * 5000 + b"}",  # past Python's integer-parsing limit
        b'{"ts": NaN}',
        b'{"rating": Infinity}',
    ],
)
def test_numbers_json_does_not_have_are_rejected_not_raised(raw: bytes):
    result = parse(raw)
    assert isinstance(result, Rejection) and result.reason.startswith("not JSON")


@pytest.mark.parametrize(
    ("bound", "seconds"),
    [
        ("2000-01-01T00:00:00Z", 946_684_800.0),
        ("946684800", 946_684_800.0),
        (" 0 ", 0.0),
        ("1996-01-01T01:00:00+01:00", 820_454_400.0),
    ],
)
def test_a_time_bound_is_rfc3339_or_epoch_seconds(bound: str, seconds: float):
    assert parse_time_bound(bound) == seconds


@pytest.mark.parametrize("bound", ["yesterday", "2000-01-01", "nan", "1e30"])
def test_a_bad_time_bound_says_what_it_accepts(bound: str):
    with pytest.raises(ValueError, match=r"RFC 3339|not a usable time"):
        parse_time_bound(bound)


def test_reason_kinds_drop_excerpts_positions_and_ids():
    assert (
        reason_kind("not JSON: Expecting value at line 1 column 2") == "not JSON: Expecting value"
    )
    assert reason_kind("field 'ts': more than 300 s in the future (got 5, 9 s ahead)") == (
        "field 'ts': more than 300 s in the future"
    )
    assert reason_kind("message key b'u2' does not match user_id 'u1'") == "message key != user_id"


def test_type_must_match_the_topic_and_key_the_user():
    assert "does not belong on topic 'clicks'" in parse(with_(), topic="clicks").reason  # type: ignore[union-attr]
    assert isinstance(parse(with_(), topic="reviews", key=b"u1"), Event)
    assert "does not match user_id" in parse(with_(), topic="reviews", key=b"u2").reason  # type: ignore[union-attr]


def test_an_oversized_message_is_rejected_before_parsing():
    result = parse(b"{" + b" " * (3 * 1024 * 1024) + b"}")
    assert isinstance(result, Rejection) and "byte limit" in result.reason


@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(raw: bytes):
    assert isinstance(parse(raw), Event | Rejection)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(st.sampled_from(list(GOOD)), st.none() | st.integers() | st.text(), max_size=8)
)
def test_arbitrary_objects_never_raise(body: dict[str, object]):
    result = parse(json.dumps(body).encode())
    assert isinstance(result, Event | Rejection)


def test_the_oldest_event_time_is_a_setting_every_validating_path_gets(
    monkeypatch: pytest.MonkeyPatch,
):
    from interest_stream.streams.errors import ConfigurationError
    from interest_stream.streams.settings import load_settings

    assert load_settings().validation_rules().min_epoch_s == 0.0
    monkeypatch.setenv("INTEREST_STREAM_MIN_EVENT_TIME", "2000-01-01T00:00:00Z")
    assert load_settings().validation_rules().min_epoch_s == 946_684_800.0
    assert load_settings(min_event_time="1990-01-01T00:00:00Z").validation_rules().min_epoch_s == (
        631_152_000.0
    )
    monkeypatch.setenv("INTEREST_STREAM_MIN_EVENT_TIME", "last tuesday")
    with pytest.raises(ConfigurationError, match="min_event_time"):
        load_settings()
