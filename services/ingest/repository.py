"""All SQL of the ingest service. Functions take a connection; the caller owns the transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from bwc.db import Connection
from bwc.s3 import UploadedPart
from services.ingest.states import UploadState, sources
from services.ingest.store.interface import Chunk, Segment

NO_TAIL = "tail_size = 0"
DEVICE_COLUMNS = "device_id, model, officer_id, enabled, registered_by, registered_at, updated_at"


@dataclass(frozen=True)
class Upload:
    id: uuid.UUID
    device_id: str
    length: int
    offset: int
    metadata_header: str
    metadata: dict[str, Any]
    object_key: str
    s3_upload_id: str | None
    parts: list[UploadedPart]
    #: Objects holding bytes below a part, and announced ones (``end`` None), by start.
    segments: list[Segment]
    tail_size: int
    state: UploadState
    sha256: str | None
    object_version_id: str | None
    reason: str | None
    expires_at: datetime
    created_at: datetime
    received_at: datetime | None
    cleanup_pending: bool
    received_sha256: str | None

    @classmethod
    def from_row(cls, row: asyncpg.Record, parts: list[UploadedPart],
                 segments: list[Segment]) -> Upload:
        return cls(
            id=row["id"],
            device_id=row["device_id"],
            length=row["upload_length"],
            offset=row["upload_offset"],
            metadata_header=row["metadata_header"],
            metadata=row["metadata"],
            object_key=row["object_key"],
            s3_upload_id=row["s3_upload_id"],
            parts=parts,
            segments=segments,
            tail_size=row["tail_size"],
            state=UploadState(row["state"]),
            sha256=row["sha256"],
            object_version_id=row["object_version_id"],
            reason=row["reason"],
            expires_at=row["expires_at"],
            created_at=row["created_at"],
            received_at=row["received_at"],
            cleanup_pending=row["cleanup_pending"],
            received_sha256=row["received_sha256"],
        )


# -- devices -------------------------------------------------------------------------------------

async def insert_device(
    conn: Connection, *, device_id: str, model: str | None, officer_id: str | None,
    registered_by: str,
) -> asyncpg.Record | None:
    """Insert a device; ``None`` when the id is taken."""
    record: asyncpg.Record | None = await conn.fetchrow(
        "INSERT INTO ingest.devices (device_id, model, officer_id, registered_by)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT (device_id) DO NOTHING"
        f" RETURNING {DEVICE_COLUMNS}",
        device_id, model, officer_id, registered_by,
    )
    return record


async def get_device(conn: Connection, device_id: str) -> asyncpg.Record | None:
    record: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {DEVICE_COLUMNS} FROM ingest.devices WHERE device_id = $1", device_id
    )
    return record


async def lock_device(conn: Connection, device_id: str) -> asyncpg.Record | None:
    """The device as it is, locked until the transaction ends: what a change is measured
    against (the audit entry's old values)."""
    record: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {DEVICE_COLUMNS} FROM ingest.devices WHERE device_id = $1 FOR UPDATE",
        device_id,
    )
    return record


async def list_devices(
    conn: Connection, *, after: str | None, limit: int
) -> list[asyncpg.Record]:
    return list(await conn.fetch(
        f"SELECT {DEVICE_COLUMNS} FROM ingest.devices"
        " WHERE ($1::text IS NULL OR device_id > $1) ORDER BY device_id LIMIT $2",
        after, limit,
    ))


async def update_device(
    conn: Connection, device_id: str, *, changes: dict[str, Any]
) -> asyncpg.Record | None:
    record: asyncpg.Record | None = await conn.fetchrow(
        "UPDATE ingest.devices SET"
        " model = CASE WHEN $2 THEN $3 ELSE model END,"
        " officer_id = CASE WHEN $4 THEN $5 ELSE officer_id END,"
        " enabled = COALESCE($6, enabled), updated_at = now()"
        f" WHERE device_id = $1 RETURNING {DEVICE_COLUMNS}",
        device_id,
        "model" in changes, changes.get("model"),
        "officer_id" in changes, changes.get("officer_id"),
        changes.get("enabled"),
    )
    return record


# -- uploads ---------------------------------------------------------------------------------------

async def insert_upload(
    conn: Connection, *, upload_id: uuid.UUID, device_id: str, length: int,
    metadata_header: str, metadata: dict[str, Any], object_key: str, expires_at: datetime,
) -> None:
    """The row comes before the S3 multipart upload (state ``creating``), so that nothing S3
    holds is ever unknown to the database (R5)."""
    await conn.execute(
        "INSERT INTO ingest.uploads (id, device_id, upload_length, metadata_header, metadata,"
        " object_key, state, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        upload_id, device_id, length, metadata_header, metadata, object_key,
        UploadState.CREATING, expires_at,
    )


async def start_receiving(conn: Connection, upload_id: uuid.UUID, s3_upload_id: str) -> bool:
    status = await conn.execute(
        "UPDATE ingest.uploads SET s3_upload_id = $2, state = $3, updated_at = now()"
        " WHERE id = $1 AND state = ANY($4::text[])",
        upload_id, s3_upload_id, UploadState.RECEIVING, sources(UploadState.RECEIVING),
    )
    return bool(status == "UPDATE 1")


async def get_upload(conn: Connection, upload_id: uuid.UUID) -> Upload | None:
    """The upload with its parts and segments, in one round trip (every PATCH reads it)."""
    row = await conn.fetchrow(
        "SELECT u.*,"
        " (SELECT jsonb_agg(jsonb_build_array(p.number, p.etag, p.size) ORDER BY p.number)"
        "  FROM ingest.upload_parts p WHERE p.upload_id = u.id) AS part_list,"
        " (SELECT jsonb_agg(jsonb_build_array(s.key, s.start_offset, s.end_offset, s.version_id)"
        "  ORDER BY s.start_offset)"
        "  FROM ingest.upload_segments s WHERE s.upload_id = u.id) AS segment_list"
        " FROM ingest.uploads u WHERE u.id = $1", upload_id)
    if row is None:
        return None
    return Upload.from_row(
        row, [UploadedPart(number, etag, size) for number, etag, size in row["part_list"] or []],
        [Segment(key, start, end, version_id)
         for key, start, end, version_id in row["segment_list"] or []])


async def access_of(conn: Connection, upload_id: uuid.UUID, device_id: str) -> asyncpg.Record:
    """Whose upload ``upload_id`` is (``upload_device``, NULL when there is none) and whether
    ``device_id`` is ``registered`` and ``enabled``, in one round trip."""
    record: asyncpg.Record | None = await conn.fetchrow(
        "SELECT (SELECT device_id FROM ingest.uploads WHERE id = $1) AS upload_device,"
        " d.device_id IS NOT NULL AS registered, COALESCE(d.enabled, false) AS enabled"
        " FROM (SELECT 1) AS one LEFT JOIN ingest.devices d ON d.device_id = $2",
        upload_id, device_id)
    assert record is not None  # always one row
    return record


async def advance_upload(
    conn: Connection, upload: Upload, chunk: Chunk, *, expires_at: datetime,
    received_at: datetime,
) -> bool:
    """Record bytes received by one PATCH; ``False`` if someone else moved the offset.

    The PATCH that brings the last byte moves the upload to ``completing`` but leaves the
    offset the device sees where that PATCH started: the full offset is shown only once the
    recording is verified (``mark_completed``), so a device that resumes sends the last bytes
    again rather than believing an unverified upload is done.
    """
    new_offset = upload.offset + chunk.received
    done = new_offset == upload.length
    segment = chunk.segment
    # One statement, one round trip: its parts and its segment are written only when the
    # offset moved (``moved``), all in the statement's own transaction (a synchronous commit).
    # ON CONFLICT: a repeated completion re-uploads the last part under the same number.
    moved: int = await conn.fetchval(
        "WITH moved AS ("
        " UPDATE ingest.uploads SET upload_offset = $2, tail_size = $3, state = $4,"
        " expires_at = $5, received_at = $6, received_sha256 = $7, updated_at = now()"
        " WHERE id = $1 AND upload_offset = $8 AND state = $9 RETURNING id),"
        " parts AS (INSERT INTO ingest.upload_parts (upload_id, number, etag, size)"
        " SELECT moved.id, p.number, p.etag, p.size"
        " FROM moved, unnest($10::int[], $11::text[], $12::bigint[]) AS p(number, etag, size)"
        " ON CONFLICT (upload_id, number) DO UPDATE"
        " SET etag = EXCLUDED.etag, size = EXCLUDED.size),"
        " segment AS (UPDATE ingest.upload_segments SET end_offset = $14, version_id = $15"
        " WHERE upload_id = (SELECT id FROM moved) AND key = $13)"
        " SELECT count(*) FROM moved",
        upload.id, upload.offset if done else new_offset, chunk.tail_size,
        UploadState.COMPLETING if done else UploadState.RECEIVING, expires_at,
        received_at if done else None, chunk.sha256 if done else None, upload.offset,
        UploadState.RECEIVING,
        [p.number for p in chunk.parts], [p.etag for p in chunk.parts],
        [p.size for p in chunk.parts],
        segment.key if segment is not None else None,
        segment.end if segment is not None else None,
        segment.version_id if segment is not None else None,
    )
    return moved == 1


async def announce_segment(conn: Connection, upload_id: uuid.UUID, key: str, start: int) -> None:
    """Name a segment object before it is written: a crash of ingest before the offset commit
    leaves a row (removed with the upload), never an object nothing knows of (R5).

    Committed without waiting for the WAL flush (one fsync less per PATCH): an ingest crash
    does not lose it, and the offset commit that follows flushes it with itself. Only a crash
    of Postgres within that fraction of a second could lose the row of an object that was
    written — one the retention scan still finds by its ``recording-id`` (DESIGN §4)."""
    # One round trip: the setting is local to the statement's own transaction and still in
    # force when it commits.
    await conn.execute(
        "INSERT INTO ingest.upload_segments (upload_id, key, start_offset)"
        " SELECT $1, $2, $3 FROM (SELECT set_config('synchronous_commit', 'off', true)) AS c"
        " ON CONFLICT DO NOTHING", upload_id, key, start)


async def forget_segments(conn: Connection, upload_id: uuid.UUID, segments: list[Segment]
                          ) -> None:
    """S3 confirmed these segments removed. Not waiting for the WAL flush: a lost deletion
    only repeats a removal S3 already confirmed."""
    async with conn.transaction():
        await conn.execute("SET LOCAL synchronous_commit = off")
        await conn.execute(
            "DELETE FROM ingest.upload_segments WHERE upload_id = $1 AND key = ANY($2::text[])",
            upload_id, [s.key for s in segments])


async def confirm_offset(conn: Connection, upload_id: uuid.UUID, *, offset: int) -> None:
    """A completing upload's device re-sent bytes it had sent before: confirm up to ``offset``
    (always below the length; the full offset comes only with ``mark_completed``)."""
    await conn.execute(
        "UPDATE ingest.uploads SET upload_offset = $2, updated_at = now()"
        " WHERE id = $1 AND state = $3 AND upload_offset < $2 AND $2 < upload_length",
        upload_id, offset, UploadState.COMPLETING,
    )


async def mark_completed(
    conn: Connection, upload_id: uuid.UUID, *, sha256: str, version_id: str | None
) -> bool:
    """The recording is stored and verified: only now does the offset reach the length.

    Tails are still to be removed (``cleanup_pending``) until ``cleanup_done``.
    """
    status = await conn.execute(
        "UPDATE ingest.uploads SET state = $2, sha256 = $3, object_version_id = $4,"
        " upload_offset = upload_length, cleanup_pending = true,"
        f" {NO_TAIL}, completed_at = now(), updated_at = now()"
        " WHERE id = $1 AND state = ANY($5::text[])",
        upload_id, UploadState.COMPLETED, sha256, version_id, sources(UploadState.COMPLETED),
    )
    await conn.execute("DELETE FROM ingest.upload_parts WHERE upload_id = $1", upload_id)
    return bool(status == "UPDATE 1")


async def mark_closed(
    conn: Connection, upload_id: uuid.UUID, *, state: UploadState, reason: str
) -> bool:
    """End an upload that will never complete (rejected, terminated or expired).

    Its recording metadata (location, trigger reason, officer, file name) goes too: nothing of
    a recording that is not kept may stay (R5); ids, device, times and the reason remain. Its
    stored bytes are to be removed (``cleanup_pending``) until ``cleanup_done``.
    """
    assert state.closed
    async with conn.transaction():
        status = await conn.execute(
            f"UPDATE ingest.uploads SET state = $2, reason = $3, {NO_TAIL}, cleanup_pending = true,"
            " metadata = '{}', metadata_header = '', updated_at = now()"
            " WHERE id = $1 AND state = ANY($4::text[])",
            upload_id, state, reason, sources(state),
        )
        await conn.execute("DELETE FROM ingest.upload_parts WHERE upload_id = $1", upload_id)
    return bool(status == "UPDATE 1")


async def require_cleanup(conn: Connection, upload_id: uuid.UUID) -> None:
    """Stored bytes of a closed upload turned up after it was cleaned: remove them again."""
    await conn.execute(
        "UPDATE ingest.uploads SET cleanup_pending = true, updated_at = now() WHERE id = $1",
        upload_id,
    )


async def cleanup_done(conn: Connection, upload_id: uuid.UUID) -> None:
    """S3 confirmed every removal the row asked for: its segments are gone too."""
    async with conn.transaction():
        await conn.execute(
            "UPDATE ingest.uploads SET cleanup_pending = false, updated_at = now() WHERE id = $1",
            upload_id,
        )
        await conn.execute("DELETE FROM ingest.upload_segments WHERE upload_id = $1", upload_id)


async def touch(conn: Connection, upload_id: uuid.UUID) -> None:
    await conn.execute("UPDATE ingest.uploads SET updated_at = now() WHERE id = $1", upload_id)


async def uploads_needing_work(
    conn: Connection, *, now: datetime, recovery_grace_s: float, limit: int = 100
) -> list[uuid.UUID]:
    """What the janitor must look at: expired or past-deadline receiving uploads, creations and
    completions a request left behind, uploads past their R2 deadline whatever their state,
    and stored bytes still waiting for removal."""
    rows = await conn.fetch(
        "SELECT id FROM ingest.uploads WHERE"
        " (state = ANY($4::text[]) AND (metadata->>'delete_after')::timestamptz <= $1)"
        " OR (state = $5 AND expires_at < $1)"
        " OR (state = ANY($6::text[]) AND updated_at < $1 - make_interval(secs => $2))"
        " OR cleanup_pending"
        " ORDER BY updated_at LIMIT $3",
        now, recovery_grace_s, limit,
        [UploadState.CREATING, UploadState.RECEIVING, UploadState.COMPLETING],
        UploadState.RECEIVING, [UploadState.CREATING, UploadState.COMPLETING],
    )
    return [r["id"] for r in rows]


async def count_stuck_completions(conn: Connection, *, now: datetime, grace_s: float) -> int:
    """Completions that have not finished within the grace: retried by the janitor."""
    count: int = await conn.fetchval(
        "SELECT count(*) FROM ingest.uploads WHERE state = $1"
        " AND received_at < $2::timestamptz - make_interval(secs => $3)",
        UploadState.COMPLETING, now, grace_s,
    )
    return count


async def count_cleanup_pending(conn: Connection) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM ingest.uploads WHERE cleanup_pending"
    )
    return count


async def try_lock(conn: Connection, upload_id: uuid.UUID) -> bool:
    """Session-level lock on one upload; released when the connection goes back to the pool.

    If the process dies, Postgres drops the connection and with it the lock, so a device can
    resume at once after an ingest restart.
    """
    locked: bool = await conn.fetchval(
        "SELECT pg_try_advisory_lock(hashtextextended($1, 0))", f"upload:{upload_id}"
    )
    return locked


async def unlock(conn: Connection, upload_id: uuid.UUID) -> None:
    await conn.execute(
        "SELECT pg_advisory_unlock(hashtextextended($1, 0))", f"upload:{upload_id}"
    )
