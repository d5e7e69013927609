"""Renders the committed JSON Schema files from the models, for producers in other languages.

`python -m interest_stream.schemas.jsonschema` rewrites the files; a test fails when the
committed files drift from the models, so the models stay the single source of truth.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from interest_stream.schemas.events import TOPIC_OF_TYPE, EventModel, ItemModel
from interest_stream.schemas.updates import ProfileUpdate

HERE = Path(__file__).parent


def _topic_schema(event_type: str, topic: str) -> dict[str, Any]:
    schema = EventModel.model_json_schema()
    schema["title"] = f"{topic} event"
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["properties"]["type"] = {"const": event_type, "description": "Must match the topic"}
    if event_type != "review":
        schema["properties"].pop("rating")
    if event_type == "click":
        # A click may name an item published on `items` instead of carrying its text.
        schema["required"] = [name for name in schema["required"] if name != "text"]
        schema["anyOf"] = [{"required": ["text"]}, {"required": ["item_id"]}]
    else:
        schema["required"] = sorted({*schema["required"], "text"})
    schema["description"] = (
        f"One message on topic '{topic}': UTF-8 JSON, Kafka key = user_id. "
        "Extra properties are ignored."
    )
    return schema


def render_schemas() -> dict[str, str]:
    """File name -> JSON text of every committed schema."""
    files: dict[str, Any] = {
        f"{topic}.schema.json": _topic_schema(kind, topic) for kind, topic in TOPIC_OF_TYPE.items()
    }
    update = ProfileUpdate.model_json_schema()
    update["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    update["description"] = (
        "Value of a message on the compacted topic 'profile-updates' (key = user_id); "
        "a null value (tombstone) means the user was erased."
    )
    files["profile-updates.schema.json"] = update
    item = ItemModel.model_json_schema()
    item["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    item["description"] = (
        "Value of a message on the compacted topic 'items' (key = item_id); a null value "
        "erases the item. Clicks may then carry only the item_id."
    )
    files["items.schema.json"] = item
    return {name: json.dumps(body, indent=2, sort_keys=True) + "\n" for name, body in files.items()}


def write_schemas(directory: Path = HERE) -> list[Path]:
    written = []
    for name, text in render_schemas().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_schemas():
        print(path)
