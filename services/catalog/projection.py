"""The catalogue's projection of ``recordings.v1``: every event type moves a recording through
the status machine (``states.py``), records holds and reviews, and a deletion erases what R5
does not let the catalogue keep (``erasure.py``).

Replay-safe by construction:

- the consumer records the event id in the transaction that applies it (duplicates skipped);
- every stored value comes from the events (``updated_at`` is the latest occurrence time of
  the events applied, not the time of applying), and every update is order-independent
  (earliest first review, earliest deletion, status as a function of the set of events), so
  the catalogue is a function of the *set* of events applied: a replay from offset 0 into an
  empty schema, with duplicates or in another order, gives the same rows;
- an event for a recording not known yet (or a release for a hold not known yet) is kept in
  ``pending_events`` and applied, in the order the events happened, in the transaction that
  brings what it waits for. Different producers write the events, so that order is not
  guaranteed on the topic. A waiting event is purged at ``occurred_at + retention period``
  (``projection_purge.py``): by then the recording it waits for is past its deadline (R2/R5).
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

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
from services.catalog import repository as repo
from services.catalog.states import Change, RecordingStatus, next_status

log = logging.getLogger(__name__)

RecordingEvent = (RecordingIngestedV1 | RecordingReviewedV1 | RecordingHoldPlacedV1
                  | RecordingHoldReleasedV1 | RecordingDeletedV1)
ChangeEvent = (RecordingReviewedV1 | RecordingHoldPlacedV1 | RecordingHoldReleasedV1
               | RecordingDeletedV1)

#: The event types the projection handles (all of ``recordings.v1``).
EVENT_TYPES = (EventType.RECORDING_INGESTED, EventType.RECORDING_REVIEWED,
               EventType.RECORDING_HOLD_PLACED, EventType.RECORDING_HOLD_RELEASED,
               EventType.RECORDING_DELETED)


def parse(event_type: str, data: dict[str, Any]) -> RecordingEvent:
    model = EVENT_DATA_MODELS[EventType(event_type)].model_validate(data)
    assert isinstance(model, RecordingEvent)
    return model


def occurred_at(data: RecordingEvent) -> datetime:
    """When what the event reports happened: the order waiting events are applied in."""
    if isinstance(data, RecordingIngestedV1):
        return data.uploaded_at
    if isinstance(data, RecordingReviewedV1):
        return data.reviewed_at
    if isinstance(data, RecordingHoldPlacedV1):
        return data.placed_at
    if isinstance(data, RecordingHoldReleasedV1):
        return data.released_at
    return data.deleted_at


#: What replaces a waiting event's free text once its recording is deleted (R5): the v1 models
#: require these fields, and after the deletion the event is applied without them anyway.
ERASED_TEXT = "(erased: the recording was deleted, R5)"
_FREE_TEXT: dict[type[ChangeEvent], tuple[str, ...]] = {
    RecordingHoldPlacedV1: ("case_reference", "justification"),
    RecordingHoldReleasedV1: ("justification",),
}


def _storable(data: ChangeEvent, *, erased: bool) -> dict[str, Any]:
    """What a waiting event keeps: a review's note is never stored by the catalogue, and no
    free text is kept for a recording that is deleted (R5)."""
    exclude = {"note"} if isinstance(data, RecordingReviewedV1) else set()
    stored = data.model_dump(mode="json", exclude=exclude)
    if erased:
        stored.update(dict.fromkeys(_FREE_TEXT.get(type(data), ()), ERASED_TEXT))
    return stored


class Projection:
    def __init__(self, *, retention_period: timedelta) -> None:
        self.retention_period = retention_period

    async def apply(self, conn: Connection, event: CloudEvent) -> None:
        """Apply one event in the caller's transaction (the consumer's, which also records
        the event id)."""
        data = parse(event.type, event.data)
        await repo.lock_recording(conn, data.recording_id)
        if isinstance(data, RecordingIngestedV1):
            if await repo.insert_ingested(conn, data, delete_after=self._deadline(data)):
                await self._apply_waiting(conn, data.recording_id)
            return
        if await self._apply_change(conn, event.id, data):
            if isinstance(data, RecordingHoldPlacedV1):
                await self._apply_waiting(conn, data.recording_id)  # a release may wait for it
            return
        when = occurred_at(data)
        erased = await repo.recording_status(conn, data.recording_id) is RecordingStatus.DELETED
        await repo.keep_pending(
            conn, event_id=event.id, recording_id=data.recording_id, type=event.type,
            occurred_at=when, data=_storable(data, erased=erased),
            kept_until=when + self.retention_period)
        log.info("event waits for its recording", extra={
            "event_id": event.id, "type": event.type, "recording_id": str(data.recording_id)})

    def _deadline(self, data: RecordingIngestedV1) -> datetime:
        # R2: never later than this deployment's own retention period allows. "now" is the
        # upload time from the event, so a replay of the topic gives the same deadline.
        return min(data.delete_after, deletion_deadline(
            data.recorded_at, retention_period=self.retention_period, now=data.uploaded_at))

    async def _apply_waiting(self, conn: Connection, recording_id: uuid.UUID) -> None:
        """Apply the recording's waiting events in the order they happened; a release whose
        hold comes later in that order is applied in the next pass."""
        progress = True
        while progress:
            progress = False
            for row in await repo.pending_for(conn, recording_id):
                data = parse(row["type"], row["data"])
                assert not isinstance(data, RecordingIngestedV1)
                if await self._apply_change(conn, row["event_id"], data):
                    await repo.drop_pending(conn, row["event_id"])
                    progress = True

    async def _erase_waiting(self, conn: Connection, recording_id: uuid.UUID) -> None:
        """R5: events still waiting (a release whose hold has not arrived) lose their texts
        with the recording, not only at the pending purge."""
        for row in await repo.pending_for(conn, recording_id):
            data = parse(row["type"], row["data"])
            assert not isinstance(data, RecordingIngestedV1)
            await repo.replace_pending_data(conn, row["event_id"], _storable(data, erased=True))

    async def _apply_change(self, conn: Connection, event_id: str, data: ChangeEvent) -> bool:
        """Apply a change to a known recording; ``False`` when what it refers to (the recording,
        or a release's hold) is not known yet."""
        current = await repo.recording_status(conn, data.recording_id)
        if current is None:
            return False
        # R5: after the deletion an event is recorded without its texts and brings nothing back.
        erased = current is RecordingStatus.DELETED
        change: Change
        if isinstance(data, RecordingReviewedV1):
            await repo.insert_review(conn, event_id, data)
            change = Change.REVIEWED
        elif isinstance(data, RecordingHoldPlacedV1):
            await repo.insert_hold(conn, data, erased=erased)
            change = Change.HOLD_PLACED
        elif isinstance(data, RecordingHoldReleasedV1):
            if not await repo.release_hold(conn, data, erased=erased):
                return False
            change = Change.HOLD_RELEASED
        else:
            await repo.erase_recording(conn, data)
            await self._erase_waiting(conn, data.recording_id)
            change = Change.DELETED
        standing = (await repo.standing_holds(conn, data.recording_id)
                    if change in (Change.HOLD_PLACED, Change.HOLD_RELEASED) else 0)
        status = next_status(current, change, standing_holds=standing)
        await repo.set_status(conn, data.recording_id, status, occurred_at=occurred_at(data))
        if erased and change is not Change.DELETED:
            log.warning("event for a deleted recording recorded without content", extra={
                "event_id": event_id, "type": change.value,
                "recording_id": str(data.recording_id)})
        return True
