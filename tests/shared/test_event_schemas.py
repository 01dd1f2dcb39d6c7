"""Every event model validates against the JSON Schema published in docs/events/, and the
published schemas are the ones the models generate (``make schemas`` was run)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from bwc.events import EVENT_DATA_MODELS, TOPIC_OF, CloudEvent, EventType, Topic
from tests.fixtures.events import (
    audit_event,
    deleted_event,
    hold_placed_event,
    hold_released_event,
    ingested_event,
    reviewed_event,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "events"
RECORDING = uuid.uuid4()
EXAMPLES: dict[EventType, CloudEvent] = {
    EventType.RECORDING_INGESTED: ingested_event(RECORDING),
    EventType.RECORDING_REVIEWED: reviewed_event(RECORDING),
    EventType.RECORDING_HOLD_PLACED: hold_placed_event(RECORDING),
    EventType.RECORDING_HOLD_RELEASED: hold_released_event(RECORDING, uuid.uuid4()),
    EventType.RECORDING_DELETED: deleted_event(RECORDING),
    EventType.AUDIT_RECORDED: audit_event(recording_id=RECORDING, details={"range": "0-99"}),
}


def _published(name: str) -> Draft202012Validator:
    schema = json.loads((DOCS / name).read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def test_every_event_type_has_an_example_and_a_topic() -> None:
    assert set(EXAMPLES) == set(EVENT_DATA_MODELS) == set(EventType)
    assert TOPIC_OF[EventType.AUDIT_RECORDED] is Topic.AUDIT
    assert {TOPIC_OF[t] for t in EventType if t is not EventType.AUDIT_RECORDED} == {
        Topic.RECORDINGS}


@pytest.mark.parametrize("event_type", list(EventType), ids=str)
def test_event_validates_against_its_published_schema(event_type: EventType) -> None:
    event = EXAMPLES[event_type]
    wire = json.loads(json.dumps(event.model_dump(mode="json")))
    _published("cloudevent.schema.json").validate(wire)
    _published(f"{event_type.value}.v1.schema.json").validate(wire["data"])
    # And the model reads back what the schema accepted.
    assert CloudEvent.model_validate(wire).parsed_data() == event.parsed_data()


@pytest.mark.parametrize("event_type", list(EventType), ids=str)
def test_published_schema_is_what_the_model_generates(event_type: EventType) -> None:
    published = json.loads((DOCS / f"{event_type.value}.v1.schema.json").read_text())
    assert published == EVENT_DATA_MODELS[event_type].model_json_schema(), (
        "docs/events is stale: run `make schemas`")


@pytest.mark.parametrize(("event_type", "field", "value"), [
    (EventType.RECORDING_HOLD_PLACED, "reason", "curiosity"),  # R3: four reasons only
    (EventType.RECORDING_DELETED, "reason", "because"),
    (EventType.AUDIT_RECORDED, "action", "peek"),  # closed set of actions (R7)
    (EventType.RECORDING_REVIEWED, "reviewer", "ri\u202eta"),  # bidi override in an id
    (EventType.RECORDING_DELETED, "sha256", "xyz"),
])
def test_schema_and_model_both_refuse_a_bad_value(
    event_type: EventType, field: str, value: str
) -> None:
    data = json.loads(json.dumps(EXAMPLES[event_type].model_dump(mode="json")))["data"]
    data[field] = value
    with pytest.raises(ValidationError):
        _published(f"{event_type.value}.v1.schema.json").validate(data)
    with pytest.raises(ValueError):
        EVENT_DATA_MODELS[event_type].model_validate(data)
