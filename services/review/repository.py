"""SQL of review's view of ``recordings.v1``: the recordings it may act on, and the tombstones
of deleted ones. Functions take a connection; the caller owns the transaction. Holds, reviews
and judicial confirmations have their own repository modules."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from bwc.db import Connection
from bwc.events import (
    RecordingDeletedV1,
    RecordingHoldPlacedV1,
    RecordingHoldReleasedV1,
    RecordingIngestedV1,
    RecordingReviewedV1,
)

RECORDING_COLUMNS = (
    "r.id, r.device_id, r.officer_id, r.recorded_at, r.ended_at, r.uploaded_at, r.size_bytes,"
    " r.sha256, r.content_type, r.filename, r.trigger_reason, r.announced, r.imminent_danger,"
    " r.in_home, r.location, r.bucket, r.object_key, r.object_version_id, r.delete_after"
)


async def lock_recording(conn: Connection, recording_id: uuid.UUID) -> None:
    """Serialise the events of one recording (two consumers after a partition change)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                       f"review:recording:{recording_id}")


async def insert_ingested(
    conn: Connection, data: RecordingIngestedV1, *, delete_after: datetime
) -> bool:
    """``False`` when the recording is known already, or deleted (R5: never brought back)."""
    inserted = await conn.fetchval(
        "INSERT INTO review.recordings (id, device_id, officer_id, recorded_at, ended_at,"
        " uploaded_at, size_bytes, sha256, content_type, filename, trigger_reason, announced,"
        " imminent_danger, in_home, location, bucket, object_key, object_version_id,"
        " delete_after)"
        " SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,"
        "  $18, $19"
        " WHERE NOT EXISTS (SELECT 1 FROM review.deleted_recordings WHERE id = $1)"
        " ON CONFLICT (id) DO NOTHING RETURNING true",
        data.recording_id, data.device_id, data.officer_id, data.recorded_at, data.ended_at,
        data.uploaded_at, data.size_bytes, data.sha256, data.content_type, data.filename,
        data.trigger_reason, data.announced, data.imminent_danger, data.in_home, data.location,
        data.bucket, data.object_key, data.object_version_id, delete_after,
    )
    return bool(inserted)


async def insert_hold(conn: Connection, data: RecordingHoldPlacedV1) -> bool:
    """A hold as its event states it; ``False`` if known already (review wrote it when it was
    placed, and the event comes back) or its recording is not in the view."""
    inserted = await conn.fetchval(
        "INSERT INTO review.holds (id, recording_id, reason, case_reference, justification,"
        " placed_by, placed_at)"
        " SELECT $1, $2, $3, $4, $5, $6, $7"
        " WHERE EXISTS (SELECT 1 FROM review.recordings WHERE id = $2)"
        " ON CONFLICT (id) DO NOTHING RETURNING true",
        data.hold_id, data.recording_id, data.reason.value, data.case_reference,
        data.justification, data.placed_by, data.placed_at)
    return bool(inserted)


async def release_hold(conn: Connection, data: RecordingHoldReleasedV1) -> bool:
    released = await conn.fetchval(
        "UPDATE review.holds SET released_by = $2, released_at = $3,"
        " release_justification = $4 WHERE id = $1 AND released_at IS NULL RETURNING true",
        data.hold_id, data.released_by, data.released_at, data.justification)
    return bool(released)


async def insert_review(conn: Connection, event_id: str, data: RecordingReviewedV1) -> bool:
    inserted = await conn.fetchval(
        "INSERT INTO review.reviews (event_id, recording_id, outcome, note, reviewer,"
        " reviewed_at)"
        " SELECT $1, $2, $3, $4, $5, $6"
        " WHERE EXISTS (SELECT 1 FROM review.recordings WHERE id = $2)"
        " ON CONFLICT (event_id) DO NOTHING RETURNING true",
        event_id, data.recording_id, data.outcome.value, data.note, data.reviewer,
        data.reviewed_at)
    return bool(inserted)


async def erase_recording(conn: Connection, data: RecordingDeletedV1) -> None:
    """R5: the row and everything hanging off it (holds, reviews, confirmations) go; a
    tombstone without content stays."""
    await conn.execute("DELETE FROM review.recordings WHERE id = $1", data.recording_id)
    await conn.execute(
        "INSERT INTO review.deleted_recordings (id, deleted_at, reason) VALUES ($1, $2, $3)"
        " ON CONFLICT (id) DO NOTHING", data.recording_id, data.deleted_at, data.reason.value)


# -- reads for the API -------------------------------------------------------------------------


async def get_recording(
    conn: Connection, recording_id: uuid.UUID, *, for_update: bool = False
) -> asyncpg.Record | None:
    """The recording with ``standing_holds``; ``for_update`` locks its row until the
    transaction ends (hold placement and release on one recording take turns).

    The lock is taken by a statement of its own, and the recording and its holds are read by
    the next one: a statement reads from the snapshot taken when it began, so a count made by
    the locking statement itself misses the holds committed while it waited for the lock (a
    release would take itself for the last one and clear the legal hold under a standing
    hold, R3/R6). Under READ COMMITTED the next statement sees them."""
    if for_update and not await conn.fetchval(
            "SELECT true FROM review.recordings WHERE id = $1 FOR UPDATE", recording_id):
        return None
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {RECORDING_COLUMNS},"
        " (SELECT count(*) FROM review.holds h WHERE h.recording_id = r.id"
        "  AND h.released_at IS NULL) AS standing_holds"
        " FROM review.recordings r WHERE r.id = $1", recording_id)
    return row


async def deleted_at(conn: Connection, recording_id: uuid.UUID) -> datetime | None:
    value: datetime | None = await conn.fetchval(
        "SELECT deleted_at FROM review.deleted_recordings WHERE id = $1", recording_id)
    return value


async def is_known(conn: Connection, recording_id: uuid.UUID) -> bool:
    return bool(await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM review.recordings WHERE id = $1)"
        " OR EXISTS (SELECT 1 FROM review.deleted_recordings WHERE id = $1)", recording_id))
