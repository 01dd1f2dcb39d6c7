"""CloudEvents 1.0 envelopes and the versioned event payloads the services exchange.

Every event type has one pydantic model; ``EVENT_DATA_MODELS`` maps the dotted type name to it
and ``TOPIC_OF`` to the topic it travels on. The JSON Schemas in ``docs/events/`` are generated
from these models (``bwc schemas``).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from bwc.events.audit import AuditAction, AuditEventV1, AuditService
from bwc.events.recordings import (
    DeletionReason,
    HoldReason,
    RecordingDeletedV1,
    RecordingHoldPlacedV1,
    RecordingHoldReleasedV1,
    RecordingIngestedV1,
    RecordingReviewedV1,
    RemovedItem,
    ReviewOutcome,
)

__all__ = [
    "EVENT_DATA_MODELS", "SPEC_VERSION", "TOPIC_OF", "AuditAction", "AuditEventV1",
    "AuditService", "CloudEvent", "DeletionReason", "EventType", "HoldReason",
    "RecordingDeletedV1", "RecordingHoldPlacedV1", "RecordingHoldReleasedV1",
    "RecordingIngestedV1", "RecordingReviewedV1", "RemovedItem", "ReviewOutcome", "Topic",
]

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
    AUDIT_RECORDED = "audit.recorded"


EVENT_DATA_MODELS: dict[EventType, type[BaseModel]] = {
    EventType.RECORDING_INGESTED: RecordingIngestedV1,
    EventType.RECORDING_REVIEWED: RecordingReviewedV1,
    EventType.RECORDING_HOLD_PLACED: RecordingHoldPlacedV1,
    EventType.RECORDING_HOLD_RELEASED: RecordingHoldReleasedV1,
    EventType.RECORDING_DELETED: RecordingDeletedV1,
    EventType.AUDIT_RECORDED: AuditEventV1,
}

TOPIC_OF: dict[EventType, Topic] = {
    event_type: Topic.AUDIT if event_type is EventType.AUDIT_RECORDED else Topic.RECORDINGS
    for event_type in EventType
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
