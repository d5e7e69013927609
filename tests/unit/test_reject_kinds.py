"""Every rejection carries a kind from a fixed set; metrics and DLQ headers use it directly
(never the reason's text parsed back)."""

from __future__ import annotations

import json

import pytest

from interest_stream.schemas.events import (
    MAX_MESSAGE_BYTES,
    ValidationRules,
    parse_event,
    parse_item,
)
from interest_stream.schemas.records import Provenance, Rejection, RejectKind
from interest_stream.streams.metrics import WorkerMetrics

NOW = 1_780_000_000.0
GOOD = {"event_id": "e1", "user_id": "u1", "ts": 1_700_000_000, "type": "click", "text": "a"}


def event(changes: dict[str, object] | None = None) -> bytes:
    body = {**GOOD, **(changes or {})}
    return json.dumps({k: v for k, v in body.items() if v is not None}).encode()


def rejected(raw: bytes, **where: object) -> Rejection:
    origin = Provenance("t", 1, **where)  # type: ignore[arg-type]
    outcome = parse_event(raw, origin, now=NOW, rules=ValidationRules())
    assert isinstance(outcome, Rejection), outcome
    return outcome


@pytest.mark.parametrize(
    ("raw", "where", "label"),
    [
        (b"x" * (MAX_MESSAGE_BYTES + 1), {}, "too_large"),
        (b"\xff\xfe{}", {}, "not_utf8"),
        (b"{not json", {}, "not_json"),
        (b"NaN", {}, "not_json"),
        (b"[1, 2]", {}, "not_an_object"),
        (event({"user_id": None}), {}, "field:user_id"),
        (event({"ts": "yesterday"}), {}, "field:ts"),
        (event({"ts": NOW + 86_400}), {}, "field:ts"),
        (event({"type": "like"}), {}, "field:type"),
        (event(), {"topic": "reviews"}, "field:type"),
        (event({"type": "query", "text": None}), {}, "field:text"),
        (event({"rating": 4}), {}, "field:rating"),
        (event(), {"topic": "clicks", "partition": 0}, "message_key"),
        (event(), {"topic": "clicks", "partition": 0, "key": b"u2"}, "message_key"),
    ],
)
def test_each_way_an_event_fails_has_its_kind(raw: bytes, where: dict[str, object], label: str):
    rejection = rejected(raw, **where)
    assert rejection.label() == label
    assert isinstance(rejection.kind, RejectKind) and rejection.reason


def test_an_unknown_field_name_keeps_the_label_set_bounded():
    unknown = Rejection(b"{}", "field 'x': bad", Provenance("t", 1), RejectKind.FIELD, "x" * 90)
    assert unknown.label() == "field:other"


def test_items_are_rejected_by_kind_too():
    origin = Provenance("items", 1, "items", 0, b"i1")
    keyless = parse_item(None, Provenance("items", 2, "items", 0, None))
    assert isinstance(keyless, Rejection) and keyless.kind is RejectKind.MESSAGE_KEY
    no_text = parse_item(b'{"item_id": "i1"}', origin)
    assert isinstance(no_text, Rejection) and no_text.label() == "field:text"


def test_the_worker_counts_rejections_by_kind():
    metrics = WorkerMetrics()
    metrics.observe_rejects(
        [
            rejected(b"x" * (MAX_MESSAGE_BYTES + 1), topic="clicks", partition=0, key=b"u1"),
            rejected(event({"ts": "soon"}), topic="clicks", partition=0, key=b"u1"),
        ]
    )
    value = metrics.registry.get_sample_value
    name = "interest_stream_events_rejected_total"
    assert value(name, {"topic": "clicks", "reason": "too_large"}) == 1.0
    assert value(name, {"topic": "clicks", "reason": "field:ts"}) == 1.0
