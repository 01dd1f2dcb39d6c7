"""All SQL of the catalogue. Functions take a connection; the caller owns the transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from bwc.db import Connection
from bwc.events import RecordingIngestedV1

RECORDING_COLUMNS = (
    "id, device_id, officer_id, recorded_at, ended_at, uploaded_at, size_bytes, sha256,"
    " content_type, filename, trigger_reason, announced, imminent_danger, in_home, location,"
    " status, delete_after"
)


async def upsert_ingested(
    conn: Connection, data: RecordingIngestedV1, *, delete_after: datetime
) -> None:
    await conn.execute(
        "INSERT INTO catalog.recordings (id, device_id, officer_id, recorded_at, ended_at,"
        " uploaded_at, size_bytes, sha256, content_type, filename, trigger_reason, announced,"
        " imminent_danger, in_home, location, bucket, object_key, object_version_id,"
        " delete_after) VALUES"
        " ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)"
        " ON CONFLICT (id) DO NOTHING",
        data.recording_id, data.device_id, data.officer_id, data.recorded_at, data.ended_at,
        data.uploaded_at, data.size_bytes, data.sha256, data.content_type, data.filename,
        data.trigger_reason, data.announced, data.imminent_danger, data.in_home, data.location,
        data.bucket, data.object_key, data.object_version_id, delete_after,
    )


async def get_recording(conn: Connection, recording_id: uuid.UUID) -> asyncpg.Record | None:
    record: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {RECORDING_COLUMNS} FROM catalog.recordings WHERE id = $1", recording_id
    )
    return record


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
