"""All SQL of the ingest service. Functions take a connection; the caller owns the transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from bwc.db import Connection
from bwc.s3 import UploadedPart

NO_TAIL = "tail_key = NULL, tail_version = NULL, tail_size = 0"
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
    s3_upload_id: str
    parts: list[UploadedPart]
    tail_key: str | None
    tail_version: str | None
    tail_size: int
    state: str
    sha256: str | None
    object_version_id: str | None
    reason: str | None
    expires_at: datetime
    created_at: datetime

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Upload:
        return cls(
            id=row["id"],
            device_id=row["device_id"],
            length=row["upload_length"],
            offset=row["upload_offset"],
            metadata_header=row["metadata_header"],
            metadata=row["metadata"],
            object_key=row["object_key"],
            s3_upload_id=row["s3_upload_id"],
            parts=[UploadedPart(**p) for p in row["parts"]],
            tail_key=row["tail_key"],
            tail_version=row["tail_version"],
            tail_size=row["tail_size"],
            state=row["state"],
            sha256=row["sha256"],
            object_version_id=row["object_version_id"],
            reason=row["reason"],
            expires_at=row["expires_at"],
            created_at=row["created_at"],
        )


def _parts_json(parts: list[UploadedPart]) -> list[dict[str, Any]]:
    return [{"number": p.number, "etag": p.etag, "size": p.size} for p in parts]


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


# -- uploads -------------------------------------------------------------------------------------

async def insert_upload(
    conn: Connection, *, upload_id: uuid.UUID, device_id: str, length: int,
    metadata_header: str, metadata: dict[str, Any], object_key: str, s3_upload_id: str,
    expires_at: datetime,
) -> None:
    await conn.execute(
        "INSERT INTO ingest.uploads (id, device_id, upload_length, metadata_header, metadata,"
        " object_key, s3_upload_id, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        upload_id, device_id, length, metadata_header, metadata, object_key, s3_upload_id,
        expires_at,
    )


async def get_upload(conn: Connection, upload_id: uuid.UUID) -> Upload | None:
    row = await conn.fetchrow("SELECT * FROM ingest.uploads WHERE id = $1", upload_id)
    return Upload.from_row(row) if row else None


async def advance_upload(
    conn: Connection, upload: Upload, *, received: int, new_parts: list[UploadedPart],
    tail_key: str | None, tail_version: str | None, tail_size: int, expires_at: datetime,
) -> bool:
    """Record bytes received by one PATCH; ``False`` if someone else moved the offset."""
    new_offset = upload.offset + received
    state = "completing" if new_offset == upload.length else "receiving"
    status = await conn.execute(
        "UPDATE ingest.uploads SET upload_offset = $2, parts = $3, tail_key = $4,"
        " tail_version = $5, tail_size = $6, state = $7, expires_at = $8, updated_at = now()"
        " WHERE id = $1 AND upload_offset = $9 AND state = 'receiving'",
        upload.id, new_offset, _parts_json(upload.parts + new_parts), tail_key, tail_version,
        tail_size, state, expires_at, upload.offset,
    )
    return bool(status == "UPDATE 1")


async def save_parts(
    conn: Connection, upload_id: uuid.UUID, parts: list[UploadedPart]
) -> None:
    """Move the tail into the part list once it is stored as the last S3 part."""
    await conn.execute(
        f"UPDATE ingest.uploads SET parts = $2, {NO_TAIL}, updated_at = now() WHERE id = $1",
        upload_id, _parts_json(parts),
    )


async def mark_completed(
    conn: Connection, upload_id: uuid.UUID, *, sha256: str, version_id: str | None
) -> None:
    await conn.execute(
        "UPDATE ingest.uploads SET state = 'completed', sha256 = $2, object_version_id = $3,"
        f" {NO_TAIL}, completed_at = now(), updated_at = now() WHERE id = $1",
        upload_id, sha256, version_id,
    )


async def mark_closed(
    conn: Connection, upload_id: uuid.UUID, *, state: str, reason: str
) -> None:
    """End an upload that will never complete (rejected, terminated or expired).

    Its recording metadata (location, trigger reason, officer, file name) goes too: nothing of
    a recording that is not kept may stay (R5); ids, device, times and the reason remain.
    """
    await conn.execute(
        f"UPDATE ingest.uploads SET state = $2, reason = $3, {NO_TAIL}, parts = '[]',"
        " metadata = '{}', metadata_header = '', updated_at = now() WHERE id = $1",
        upload_id, state, reason,
    )


async def touch(conn: Connection, upload_id: uuid.UUID) -> None:
    await conn.execute("UPDATE ingest.uploads SET updated_at = now() WHERE id = $1", upload_id)


async def stale_uploads(
    conn: Connection, *, now: datetime, completing_grace_s: float, limit: int = 100
) -> list[Upload]:
    """Expired receiving uploads, and completions a crashed request left behind."""
    rows = await conn.fetch(
        "SELECT * FROM ingest.uploads WHERE"
        " (state = 'receiving' AND expires_at < $1)"
        " OR (state = 'receiving' AND (metadata->>'delete_after')::timestamptz <= $1)"
        " OR (state = 'completing' AND updated_at < $1 - make_interval(secs => $2))"
        " ORDER BY updated_at LIMIT $3",
        now, completing_grace_s, limit,
    )
    return [Upload.from_row(r) for r in rows]


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
