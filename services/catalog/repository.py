"""All SQL of the catalogue. Functions take a connection; the caller owns the transaction."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from bwc.db import Connection
from bwc.events import (
    RecordingDeletedV1,
    RecordingHoldPlacedV1,
    RecordingHoldReleasedV1,
    RecordingIngestedV1,
    RecordingReviewedV1,
)
from services.catalog.erasure import ERASED
from services.catalog.states import INITIAL, RecordingStatus

RECORDING_COLUMNS = (
    "id, device_id, officer_id, recorded_at, ended_at, uploaded_at, size_bytes, sha256,"
    " content_type, filename, trigger_reason, announced, imminent_danger, in_home, location,"
    " status, delete_after, first_reviewed_at, deleted_at, deletion_reason"
)
HOLD_COLUMNS = (
    "id, recording_id, reason, case_reference, justification, placed_by, placed_at,"
    " released_by, released_at, release_justification"
)

# -- the projection of recordings.v1 ----------------------------------------------------------


async def lock_recording(conn: Connection, recording_id: uuid.UUID) -> None:
    """Serialise every event of one recording until the transaction ends: an event and the
    ``recording.ingested`` it waits for may be applied by two consumers at once (after a
    partition change), and the second must see what the first kept pending."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                       f"catalog:recording:{recording_id}")


async def insert_ingested(
    conn: Connection, data: RecordingIngestedV1, *, delete_after: datetime
) -> bool:
    """``False`` when the recording is known already (its deletion is never undone, R5)."""
    inserted = await conn.fetchval(
        "INSERT INTO catalog.recordings (id, device_id, officer_id, recorded_at, ended_at,"
        " uploaded_at, size_bytes, sha256, content_type, filename, trigger_reason, announced,"
        " imminent_danger, in_home, location, bucket, object_key, object_version_id,"
        " status, delete_after, updated_at) VALUES"
        " ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,"
        "  $19, $20, $6)"
        " ON CONFLICT (id) DO NOTHING RETURNING true",
        data.recording_id, data.device_id, data.officer_id, data.recorded_at, data.ended_at,
        data.uploaded_at, data.size_bytes, data.sha256, data.content_type, data.filename,
        data.trigger_reason, data.announced, data.imminent_danger, data.in_home, data.location,
        data.bucket, data.object_key, data.object_version_id, INITIAL.value, delete_after,
    )
    return bool(inserted)


async def recording_status(conn: Connection, recording_id: uuid.UUID) -> RecordingStatus | None:
    status = await conn.fetchval(
        "SELECT status FROM catalog.recordings WHERE id = $1", recording_id)
    return None if status is None else RecordingStatus(status)


async def set_status(
    conn: Connection, recording_id: uuid.UUID, status: RecordingStatus, *, occurred_at: datetime
) -> None:
    """``updated_at`` is the latest occurrence time of the events applied, whatever order they
    arrived in, so a replay gives the same value."""
    await conn.execute(
        "UPDATE catalog.recordings SET status = $2, updated_at = greatest(updated_at, $3)"
        " WHERE id = $1", recording_id, status.value, occurred_at)


async def insert_review(conn: Connection, event_id: str, data: RecordingReviewedV1) -> None:
    await conn.execute(
        "INSERT INTO catalog.reviews (event_id, recording_id, outcome, reviewer, reviewed_at)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        event_id, data.recording_id, data.outcome.value, data.reviewer, data.reviewed_at)
    # R9: time from upload to the first review.
    await conn.execute(
        "UPDATE catalog.recordings"
        " SET first_reviewed_at = least(coalesce(first_reviewed_at, $2), $2) WHERE id = $1",
        data.recording_id, data.reviewed_at)


async def insert_hold(conn: Connection, data: RecordingHoldPlacedV1, *, erased: bool) -> None:
    """Record a hold; ``erased``: the recording is deleted, its texts are not kept (R5)."""
    await conn.execute(
        "INSERT INTO catalog.holds (id, recording_id, reason, case_reference, justification,"
        " placed_by, placed_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
        data.hold_id, data.recording_id, data.reason.value,
        None if erased else data.case_reference, None if erased else data.justification,
        data.placed_by, data.placed_at)


async def release_hold(conn: Connection, data: RecordingHoldReleasedV1, *, erased: bool) -> bool:
    """Record a release; ``False`` when the hold is not known (yet). Of two releases of one
    hold the earlier counts, whichever arrives first."""
    found = await conn.fetchval(
        "WITH hold AS (SELECT id FROM catalog.holds WHERE id = $1 AND recording_id = $2),"
        " released AS (UPDATE catalog.holds SET released_by = $3, released_at = $4,"
        "   release_justification = $5"
        "   WHERE id = $1 AND recording_id = $2"
        "   AND (released_at IS NULL OR (released_at, released_by) > ($4, $3::text)))"
        " SELECT EXISTS (SELECT 1 FROM hold)",
        data.hold_id, data.recording_id, data.released_by, data.released_at,
        None if erased else data.justification)
    return bool(found)


async def standing_holds(conn: Connection, recording_id: uuid.UUID) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM catalog.holds WHERE recording_id = $1 AND released_at IS NULL",
        recording_id)
    return count


async def erase_recording(conn: Connection, data: RecordingDeletedV1) -> None:
    """R5: the recording is deleted. Its content-bearing fields and the texts of its holds are
    set to NULL (services/catalog/erasure.py); of two deletions the earlier counts."""
    erase = ", ".join(f"{column} = NULL" for column in ERASED["recordings"])
    await conn.execute(
        f"UPDATE catalog.recordings SET {erase}, status = $2,"
        " deleted_at = least(coalesce(deleted_at, $3), $3),"
        " deletion_reason = CASE WHEN deleted_at IS NULL"
        "   OR ($3, $4::text) < (deleted_at, deletion_reason) THEN $4 ELSE deletion_reason END"
        " WHERE id = $1",
        data.recording_id, RecordingStatus.DELETED.value, data.deleted_at, data.reason.value)
    erase_holds = ", ".join(f"{column} = NULL" for column in ERASED["holds"])
    await conn.execute(f"UPDATE catalog.holds SET {erase_holds} WHERE recording_id = $1",
                       data.recording_id)


# -- events waiting for their recording (or hold) --------------------------------------------


async def keep_pending(
    conn: Connection, *, event_id: str, recording_id: uuid.UUID, type: str,
    occurred_at: datetime, data: dict[str, Any], kept_until: datetime,
) -> None:
    await conn.execute(
        "INSERT INTO catalog.pending_events (event_id, recording_id, type, occurred_at, data,"
        " kept_until) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        event_id, recording_id, type, occurred_at, data, kept_until)


async def pending_for(conn: Connection, recording_id: uuid.UUID) -> list[asyncpg.Record]:
    """The recording's waiting events in the order they happened."""
    return list(await conn.fetch(
        "SELECT event_id, type, data FROM catalog.pending_events WHERE recording_id = $1"
        " ORDER BY occurred_at, event_id", recording_id))


async def replace_pending_data(conn: Connection, event_id: str, data: dict[str, Any]) -> None:
    await conn.execute("UPDATE catalog.pending_events SET data = $2 WHERE event_id = $1",
                       event_id, data)


async def drop_pending(conn: Connection, event_id: str) -> None:
    await conn.execute("DELETE FROM catalog.pending_events WHERE event_id = $1", event_id)


async def purge_pending(conn: Connection, *, now: datetime) -> list[asyncpg.Record]:
    """Remove waiting events kept past their bound (R5); returns what went, without data."""
    return list(await conn.fetch(
        "DELETE FROM catalog.pending_events WHERE kept_until <= $1"
        " RETURNING event_id, recording_id, type, occurred_at", now))


# -- the read API -----------------------------------------------------------------------------


async def get_recording(conn: Connection, recording_id: uuid.UUID) -> asyncpg.Record | None:
    record: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {RECORDING_COLUMNS} FROM catalog.recordings WHERE id = $1", recording_id
    )
    return record


async def holds_of(
    conn: Connection, recording_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[asyncpg.Record]]:
    """The holds of a page of recordings in one query, oldest first per recording."""
    holds: dict[uuid.UUID, list[asyncpg.Record]] = defaultdict(list)
    for row in await conn.fetch(
        f"SELECT {HOLD_COLUMNS} FROM catalog.holds WHERE recording_id = ANY($1::uuid[])"
        " ORDER BY recording_id, placed_at, id", recording_ids,
    ):
        holds[row["recording_id"]].append(row)
    return holds


@dataclass(frozen=True)
class RecordingFilter:
    device_id: str | None = None
    officer_id: str | None = None
    status: str | None = None
    recorded_from: datetime | None = None
    recorded_to: datetime | None = None
    in_home: bool | None = None
    announced: bool | None = None


async def list_recordings(
    conn: Connection, f: RecordingFilter, *,
    after: tuple[datetime, uuid.UUID] | None, limit: int,
) -> list[asyncpg.Record]:
    """Newest first; ``after`` is the (recorded_at, id) of the last row of the previous page."""
    return list(await conn.fetch(
        f"SELECT {RECORDING_COLUMNS} FROM catalog.recordings WHERE"
        " ($1::text IS NULL OR device_id = $1)"
        " AND ($2::text IS NULL OR officer_id = $2)"
        " AND ($3::text IS NULL OR status = $3)"
        " AND ($4::timestamptz IS NULL OR recorded_at >= $4)"
        " AND ($5::timestamptz IS NULL OR recorded_at < $5)"
        " AND ($6::boolean IS NULL OR in_home = $6)"
        " AND ($7::boolean IS NULL OR announced = $7)"
        " AND ($8::timestamptz IS NULL OR (recorded_at, id) < ($8, $9::uuid))"
        " ORDER BY recorded_at DESC, id DESC LIMIT $10",
        f.device_id, f.officer_id, f.status, f.recorded_from, f.recorded_to, f.in_home,
        f.announced, after[0] if after else None, after[1] if after else None, limit,
    ))
