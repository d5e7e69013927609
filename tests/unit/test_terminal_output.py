"""Texts from events reach terminals: control characters are shown, never obeyed."""

from __future__ import annotations

from types import SimpleNamespace

from interest_stream.schemas.events import printable
from interest_stream.schemas.updates import ClusterSummary, ProfileUpdate
from interest_stream.streams.kafka.watch import follow_updates, format_update


def test_printable_escapes_controls_and_keeps_everything_else():
    assert printable("a\x00b\nc\x1b[31m\u202eq") == "a\\x00b\\nc\\x1b[31m\\u202eq"
    assert printable("Amélie (2001) — 😀 ok") == "Amélie (2001) — 😀 ok"


def test_watch_lines_carry_no_raw_control_characters():
    update = ProfileUpdate(
        user_id="u\x1b[2J",
        version=2,
        model_id="m",
        updated_at="2026-09-21T14:13:20.000+00:00",
        event_time=None,
        event_count=7,
        drift=0.42,
        clusters=[ClusterSummary(label="Evil\x00label\x1b[31m", weight=3.25, size=4)],
        short=[0.0] * 4,
        long=[1.0] * 4,
    )
    message = SimpleNamespace(
        key=b"u\x1b[2J",
        value=update.model_dump_json().encode(),
        partition=0,
        offset=0,
        timestamp=1_790_000_000_000,
    )
    line = format_update(next(iter(follow_updates([message]))))
    assert "\x1b" not in line and "\x00" not in line
    assert "u\\x1b[2J" in line and "Evil\\x00label\\x1b[31m" in line
