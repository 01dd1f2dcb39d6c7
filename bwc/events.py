"""CloudEvents 1.0 envelopes and the versioned event payloads the services exchange.

Every event type has one pydantic model; ``EVENT_DATA_MODELS`` maps the dotted type name to it.
The JSON Schemas in ``docs/events/`` are generated from these models (``bwc schemas``).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

SPEC_VERSION = "1.0"


class Topic(StrEnum):
    RECORDINGS = "recordings.v1"
    AUDIT = "audit.v1"


class EventType(StrEnum):
    RECORDING_INGESTED = "recording.ingested"
    RECORDING_REVIEWED = "recording.reviewed"
    RECORDING_HOLD_PLACED = "recording.hold_placed"
    RECORDING_HOLD_RELEASED = "recording.hold_released"
    RECORDING_DELETED = "recording.deleted"


class RecordingIngestedV1(BaseModel):
    """Data of ``recording.ingested``: a recording is fully stored and its hash recorded."""

    # Tolerant reader: a producer one version ahead may add fields; they are ignored.
    model_config = ConfigDict(extra="ignore")

    schema_version: int = 1
    recording_id: uuid.UUID
    device_id: str
    officer_id: str | None
    recorded_at: AwareDatetime
    ended_at: AwareDatetime | None
    uploaded_at: AwareDatetime
    size_bytes: int
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    content_type: str
    filename: str | None
    trigger_reason: str
    announced: bool
    imminent_danger: bool
    in_home: bool
    location: str | None
    bucket: str
    object_key: str
    object_version_id: str | None
    delete_after: AwareDatetime


EVENT_DATA_MODELS: dict[EventType, type[BaseModel]] = {
    EventType.RECORDING_INGESTED: RecordingIngestedV1,
}


class CloudEvent(BaseModel):
    """The CloudEvents 1.0 JSON envelope (structured mode)."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    source: str
    type: str
    specversion: str = SPEC_VERSION
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    subject: str
    datacontenttype: str = "application/json"
    data: dict[str, Any]

    @classmethod
    def wrap(cls, *, source: str, subject: str, data: BaseModel) -> CloudEvent:
        event_type = next(t for t, m in EVENT_DATA_MODELS.items() if isinstance(data, m))
        return cls(
            source=source,
            type=event_type.value,
            subject=subject,
            data=data.model_dump(mode="json"),
        )

    def parsed_data(self) -> BaseModel:
        """The payload as its typed model; raises ``KeyError`` for an unknown type."""
        model = EVENT_DATA_MODELS[EventType(self.type)]
        return model.model_validate(self.data)
