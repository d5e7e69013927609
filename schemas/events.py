"""The input event contract (topics `clicks`, `reviews`, `queries`) and its validation.

`EventModel` is the single source of truth: the JSON Schema files producers validate
against are generated from it, and `parse_event` turns raw message bytes into either a
validated `Event` or a `Rejection` whose reason names the field, the rule and an excerpt
of the offending value. Nothing here raises on bad input: rejections are data.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
)

from interest_stream.schemas.records import Provenance, Rejection, RejectKind

EventType = Literal["click", "review", "query"]

TOPIC_OF_TYPE: dict[str, str] = {"click": "clicks", "review": "reviews", "query": "queries"}
TYPE_OF_TOPIC: dict[str, str] = {topic: kind for kind, topic in TOPIC_OF_TYPE.items()}
INPUT_TOPICS: tuple[str, ...] = tuple(TOPIC_OF_TYPE.values())
"""The topics events arrive on, consumed co-partitioned by user."""

MAX_ID_CHARS = 128
MAX_TEXT_CHARS = 4096
MAX_MESSAGE_BYTES = 2 * 1024 * 1024
# The default oldest event time: the Unix epoch, 1970-01-01T00:00:00Z. Real logs reach far
# back (a public rating log starts in 1996), so by default only what cannot be an event time
# is refused; a deployment that knows when its history starts raises the bound
# (Settings.min_event_time) to catch unit mistakes such as seconds sent as milliseconds,
# which land in January 1970.
MIN_EPOCH_SECONDS = 0.0
# Epoch milliseconds beyond this (about year 33658) cannot be converted to a date.
MAX_EPOCH_MS = 10**15

_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)

Identifier = Annotated[StrictStr, Field(min_length=1, max_length=MAX_ID_CHARS)]
Timestamp = Annotated[
    StrictInt | Annotated[StrictStr, Field(json_schema_extra={"format": "date-time"})],
    Field(description="RFC 3339 timestamp with offset, or epoch milliseconds"),
]


def normalize_text(text: str) -> str:
    """NFC-normalize and trim: the form that is validated, encoded and cached."""
    return unicodedata.normalize("NFC", text).strip()


# C0 and C1 control characters, and the bidirectional overrides that reorder what a
# terminal shows: a text carrying them must not move the cursor or disguise itself.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """`text` safe to print on a terminal: control characters shown as escapes (\\x00,
    \\n, \\u202e), everything else as it is. For display only, never for storage."""
    return _UNPRINTABLE.sub(lambda m: repr(m.group())[1:-1], text)


def parse_timestamp(value: int | str) -> float:
    """Epoch seconds from an RFC 3339 string with offset or from epoch milliseconds."""
    if isinstance(value, int):
        if abs(value) > MAX_EPOCH_MS:
            raise ValueError("epoch milliseconds out of range")
        return value / 1000.0
    if not _RFC3339.match(value):
        raise ValueError("must be RFC 3339 with a UTC offset, e.g. 2026-01-31T12:00:00Z")
    return datetime.fromisoformat(value.replace("z", "Z")).timestamp()


def parse_time_bound(text: str | float) -> float:
    """A configured time bound in epoch seconds: RFC 3339 with an offset, or epoch seconds
    (unlike an event's integer ts, which is milliseconds: a bound is written by a person)."""
    if isinstance(text, int | float):
        seconds = float(text)
    else:
        value = text.strip()
        try:
            seconds = float(value)
        except ValueError:
            if not _RFC3339.match(value):
                raise ValueError(
                    f"{text!r} is neither RFC 3339 with an offset (e.g. 2000-01-01T00:00:00Z)"
                    " nor epoch seconds"
                ) from None
            return datetime.fromisoformat(value.replace("z", "Z")).timestamp()
    if not math.isfinite(seconds) or abs(seconds) > MAX_EPOCH_MS / 1000:
        raise ValueError(f"{text!r} is not a usable time")
    return seconds


def format_time(epoch_s: float) -> str:
    """An epoch time as people read it in a reason: a date at midnight UTC, else RFC 3339."""
    moment = datetime.fromtimestamp(epoch_s, tz=UTC)
    if moment.time() == datetime.min.time():
        return moment.strftime("%Y-%m-%d")
    return moment.isoformat().replace("+00:00", "Z")


class EventModel(BaseModel):
    """One user action, as producers publish it (JSON object, UTF-8, key = user_id)."""

    model_config = ConfigDict(extra="ignore", frozen=True, title="InterestEvent")

    event_id: Identifier = Field(description="Idempotency key; unique per event")
    user_id: Identifier = Field(description="Whose profile the event feeds; also the key")
    ts: Timestamp
    type: EventType = Field(description="click, review or query; must match the topic")
    text: Annotated[StrictStr, Field(min_length=1, max_length=MAX_TEXT_CHARS)] | None = Field(
        default=None,
        description="What the user saw, wrote or searched (1..4096 chars after trim/NFC);"
        " a click may leave it out when item_id names an item published on `items`",
    )
    item_id: Identifier | None = None
    rating: Annotated[StrictInt | StrictFloat, Field(ge=1, le=5)] | None = Field(
        default=None, description="Reviews only: 1 (hated) .. 5 (loved)"
    )
    domain: Annotated[StrictStr, Field(min_length=1, max_length=64)] | None = Field(
        default=None, description="Optional catalogue domain, e.g. movies, books"
    )

    @field_validator("text", mode="before")
    @classmethod
    def _normalize_text(cls, value: Any) -> Any:
        return normalize_text(value) if isinstance(value, str) else value

    @field_validator("ts")
    @classmethod
    def _check_ts(cls, value: int | str) -> int | str:
        parse_timestamp(value)
        return value


@dataclass(frozen=True, slots=True)
class Event:
    """A validated event with its timestamp resolved to epoch seconds.

    `text` is None only for a click that names an item instead; the batch core fills it in
    from the item catalogue (or rejects the click if the item is unknown).
    """

    event_id: str
    user_id: str
    ts: float
    type: str
    text: str | None
    item_id: str | None = None
    rating: float | None = None
    domain: str | None = None


@dataclass(frozen=True)
class ValidationRules:
    """The time window an event's ts must fall in: not before `min_epoch_s` (epoch seconds)
    and not more than `max_future_skew_s` ahead of the validating clock."""

    max_future_skew_s: float = 300.0
    min_epoch_s: float = MIN_EPOCH_SECONDS


def _excerpt(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


def _describe(error: ValidationError) -> tuple[str, str]:
    """The field at fault and the reason, from pydantic's first error."""
    first = error.errors(include_url=False)[0]
    field = ".".join(str(part) for part in first["loc"] if not str(part).startswith(("str", "int")))
    message = first["msg"]
    if first["type"] == "missing":
        return field, f"field '{field}': required"
    if first["type"] == "literal_error":
        message = "must be one of click, review, query"
    return field, f"field '{field}': {message} (got {_excerpt(first.get('input'))})"


_VARYING = (
    (re.compile(r" \(got .*$", re.S), ""),
    (re.compile(r" at (line \d+ column \d+|position \d+)$"), ""),
    (re.compile(r"^message is \d+ bytes, "), "message is "),
    (re.compile(r"^message key .* does not match (\w+) .*$", re.S), r"message key != \1"),
    (re.compile(r"^field 'item_id': unknown item .*$", re.S), "field 'item_id': unknown item"),
)


def reason_kind(reason: str) -> str:
    """A rejection reason without its excerpt, positions and ids, so that reasons can be
    counted: "field 'ts': before 1970-01-01 (got -5)" -> "field 'ts': before 1970-01-01"."""
    kind = reason
    for pattern, replacement in _VARYING:
        kind = pattern.sub(replacement, kind)
    return kind[:100]


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _json_object(raw: bytes) -> dict[str, Any] | tuple[RejectKind, str]:
    """The message as a JSON object, or why it is not one (kind and reason)."""
    if len(raw) > MAX_MESSAGE_BYTES:
        limit = f"message is {len(raw)} bytes, over the {MAX_MESSAGE_BYTES}-byte limit"
        return RejectKind.TOO_LARGE, limit
    try:
        document = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError as exc:
        return RejectKind.NOT_UTF8, f"not UTF-8: invalid byte at position {exc.start}"
    except json.JSONDecodeError as exc:
        return RejectKind.NOT_JSON, f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
    except RecursionError:
        return RejectKind.NOT_JSON, "not JSON: nested too deeply"
    except ValueError as exc:
        # An integer too long to convert, or NaN/Infinity, which JSON does not have.
        return RejectKind.NOT_JSON, f"not JSON: {str(exc).split(':', 1)[0]}"
    if not isinstance(document, dict):
        return RejectKind.NOT_AN_OBJECT, f"not a JSON object: got {type(document).__name__}"
    return document


def parse_event(
    raw: bytes, origin: Provenance, *, now: float, rules: ValidationRules
) -> Event | Rejection:
    """Decode and validate one message; a bad message comes back as a `Rejection`."""
    topic, key = origin.topic, origin.key

    def reject(kind: RejectKind, reason: str, field: str | None = None) -> Rejection:
        return Rejection(raw, reason, origin, kind, field)

    def bad(field: str, reason: str) -> Rejection:
        return reject(RejectKind.FIELD, reason, field)

    document = _json_object(raw)
    if isinstance(document, tuple):
        return reject(*document)
    try:
        model = EventModel.model_validate(document)
    except ValidationError as exc:
        return bad(*_describe(exc))
    ts = parse_timestamp(model.ts)
    if ts < rules.min_epoch_s:
        return bad(
            "ts", f"field 'ts': before {format_time(rules.min_epoch_s)} (got {_excerpt(model.ts)})"
        )
    if ts > now + rules.max_future_skew_s:
        ahead = ts - now
        return bad(
            "ts",
            f"field 'ts': more than {rules.max_future_skew_s:.0f} s in the future"
            f" (got {_excerpt(model.ts)}, {ahead:.0f} s ahead)",
        )
    if topic is not None and TYPE_OF_TOPIC.get(topic, model.type) != model.type:
        return bad("type", f"field 'type': '{model.type}' does not belong on topic '{topic}'")
    if model.text is None and (model.type != "click" or model.item_id is None):
        return bad("text", "field 'text': required (only a click with an item_id may leave it out)")
    if model.rating is not None and model.type != "review":
        return bad(
            "rating", f"field 'rating': only reviews carry a rating (type is '{model.type}')"
        )
    if key is None and origin.partition is not None:
        return reject(
            RejectKind.MESSAGE_KEY,
            "message key: missing; key every event by its user_id"
            " (the topology partitions by user)",
        )
    if key is not None and key != model.user_id.encode():
        return reject(
            RejectKind.MESSAGE_KEY,
            f"message key {_excerpt(key)} does not match user_id {model.user_id!r}",
        )
    return Event(
        event_id=model.event_id,
        user_id=model.user_id,
        ts=ts,
        type=model.type,
        text=model.text,
        item_id=model.item_id,
        rating=None if model.rating is None else float(model.rating),
        domain=model.domain,
    )


class ItemModel(BaseModel):
    """One catalogue item on the compacted `items` topic (key = item_id; null value = erase)."""

    model_config = ConfigDict(extra="ignore", frozen=True, title="Item")

    item_id: Identifier = Field(description="Must equal the message key")
    text: Annotated[StrictStr, Field(min_length=1, max_length=MAX_TEXT_CHARS)] = Field(
        description="Title or description the item is embedded from"
    )
    domain: Annotated[StrictStr, Field(min_length=1, max_length=64)] | None = None

    @field_validator("text", mode="before")
    @classmethod
    def _normalize_text(cls, value: Any) -> Any:
        return normalize_text(value) if isinstance(value, str) else value


@dataclass(frozen=True, slots=True)
class Item:
    """A validated catalogue item; `text` None means the item was erased (tombstone)."""

    item_id: str
    text: str | None
    domain: str | None = None


def parse_item(raw: bytes | None, origin: Provenance) -> Item | Rejection:
    """Decode one `items` message; a null value with a key is an erasure."""
    key = origin.key

    def reject(kind: RejectKind, reason: str, field: str | None = None) -> Rejection:
        return Rejection(raw or b"", reason, origin, kind, field)

    if raw is None:
        if not key:
            return reject(RejectKind.MESSAGE_KEY, "tombstone without a key")
        return Item(key.decode("utf-8", errors="replace"), None)
    document = _json_object(raw)
    if isinstance(document, tuple):
        return reject(*document)
    try:
        model = ItemModel.model_validate(document)
    except ValidationError as exc:
        field, reason = _describe(exc)
        return reject(RejectKind.FIELD, reason, field)
    if key is not None and key != model.item_id.encode():
        return reject(
            RejectKind.MESSAGE_KEY,
            f"message key {_excerpt(key)} does not match item_id {model.item_id!r}",
        )
    return Item(model.item_id, model.text, model.domain)
