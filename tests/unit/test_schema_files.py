"""The committed JSON Schema files are what the models generate, and they accept real events."""

from __future__ import annotations

import json

from interest_stream.schemas.jsonschema import HERE, render_schemas
from interest_stream.streams.demo import generate


def test_committed_schema_files_match_the_models():
    for name, text in render_schemas().items():
        committed = (HERE / name).read_text(encoding="utf-8")
        assert committed == text, f"{name} drifted: run python -m schemas.jsonschema"


def test_topic_schemas_pin_the_type_and_rating():
    schemas = {name: json.loads(text) for name, text in render_schemas().items()}
    assert schemas["clicks.schema.json"]["properties"]["type"] == {
        "const": "click",
        "description": "Must match the topic",
    }
    assert "rating" not in schemas["queries.schema.json"]["properties"]
    assert "rating" in schemas["reviews.schema.json"]["properties"]
    required = set(schemas["reviews.schema.json"]["required"])
    assert required == {"event_id", "user_id", "ts", "type", "text"}
    event = generate(users=1, events_per_user=1).events[0]
    assert required <= set(event)
