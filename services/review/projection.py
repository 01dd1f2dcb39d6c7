"""Review's view of ``recordings.v1``: what it needs to act on a recording (object key and
version, SHA-256, size, ``in_home``, deadline, holds) kept in its own schema.

- ``recording.ingested`` adds the recording with its deadline, never later than
  ``recorded_at`` + this deployment's retention period (R2);
- ``recording.hold_placed`` / ``hold_released`` / ``reviewed`` come back from review's own
  outbox (another replica's, or a replay): applied if not known yet, otherwise no-ops;
- ``recording.deleted`` removes the recording and all it carries, leaving a tombstone (R5).

Each event is applied in the consumer's transaction, which also records its id (idempotent).
Review emits a change only for a recording it knows, after that recording's
``recording.ingested`` is on the topic (same key, same partition), so nothing here waits for
an event still to come: a change for an unknown recording is logged and skipped.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from bwc.db import Connection
from bwc.deadline import deletion_deadline
from bwc.events import (
    EVENT_DATA_MODELS,
    CloudEvent,
    EventType,
    RecordingDeletedV1,
    RecordingHoldPlacedV1,
    RecordingHoldReleasedV1,
    RecordingIngestedV1,
    RecordingReviewedV1,
)
from services.review import repository as repo

log = logging.getLogger(__name__)

RecordingEvent = (RecordingIngestedV1 | RecordingReviewedV1 | RecordingHoldPlacedV1
                  | RecordingHoldReleasedV1 | RecordingDeletedV1)

EVENT_TYPES = (EventType.RECORDING_INGESTED, EventType.RECORDING_REVIEWED,
               EventType.RECORDING_HOLD_PLACED, EventType.RECORDING_HOLD_RELEASED,
               EventType.RECORDING_DELETED)


class Projection:
    def __init__(self, *, retention_period: timedelta) -> None:
        self.retention_period = retention_period

    async def apply(self, conn: Connection, event: CloudEvent) -> None:
        data = EVENT_DATA_MODELS[EventType(event.type)].model_validate(event.data)
        assert isinstance(data, RecordingEvent)
        recording_id = data.recording_id
        await repo.lock_recording(conn, recording_id)
        if isinstance(data, RecordingIngestedV1):
            # "now" is the upload time from the event, so a replay gives the same deadline.
            deadline = min(data.delete_after, deletion_deadline(
                data.recorded_at, retention_period=self.retention_period, now=data.uploaded_at))
            await repo.insert_ingested(conn, data, delete_after=deadline)
            return
        if isinstance(data, RecordingDeletedV1):
            await repo.erase_recording(conn, data)
            return
        if isinstance(data, RecordingHoldPlacedV1):
            applied = await repo.insert_hold(conn, data)
        elif isinstance(data, RecordingHoldReleasedV1):
            applied = await repo.release_hold(conn, data)
        elif isinstance(data, RecordingReviewedV1):
            applied = await repo.insert_review(conn, event.id, data)
        else:  # pragma: no cover - EVENT_TYPES lists what the consumer hands over
            raise TypeError(f"review does not handle {event.type}")
        if not applied and not await repo.is_known(conn, recording_id):
            log.warning("event for a recording review does not know, skipped", extra={
                "event_id": event.id, "type": event.type, "recording_id": str(recording_id)})
