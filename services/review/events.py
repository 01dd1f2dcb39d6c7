"""What review emits on ``recordings.v1``: its changes (holds, releases, reviews) go through
its outbox in the transaction that records them; the relay publishes them."""

from __future__ import annotations

from bwc.db import Connection
from bwc.events import (
    CloudEvent,
    RecordingHoldPlacedV1,
    RecordingHoldReleasedV1,
    RecordingReviewedV1,
    Topic,
)
from bwc.outbox import enqueue

SCHEMA = "review"
SOURCE = "/bwc/review"


#: The changes review makes.
Change = RecordingHoldPlacedV1 | RecordingHoldReleasedV1 | RecordingReviewedV1


async def emit(conn: Connection, data: Change) -> CloudEvent:
    """Enqueue ``data``  in the caller's
    transaction; key = recording id, so one recording's events stay in order."""
    key = str(data.recording_id)
    event = CloudEvent.wrap(source=SOURCE, subject=key, data=data)
    await enqueue(conn, schema=SCHEMA, topic=Topic.RECORDINGS, key=key, event=event)
    return event
