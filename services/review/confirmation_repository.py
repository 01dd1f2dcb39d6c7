"""SQL of judicial confirmations (R8) and of what an evidence package lists about a recording.
Functions take a connection; the caller owns the transaction (and holds the recording's row
lock when it writes)."""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from bwc.db import Connection

CONFIRMATION_COLUMNS = "recording_id, reference, court, decided_at, recorded_by, recorded_at"


async def get_confirmation(conn: Connection, recording_id: uuid.UUID) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {CONFIRMATION_COLUMNS} FROM review.judicial_confirmations"
        " WHERE recording_id = $1", recording_id)
    return row


async def insert_confirmation(
    conn: Connection, *, recording_id: uuid.UUID, reference: str, court: str,
    decided_at: datetime, recorded_by: str, recorded_at: datetime,
) -> asyncpg.Record:
    """One confirmation per recording: the primary key refuses a second one."""
    row: asyncpg.Record | None = await conn.fetchrow(
        "INSERT INTO review.judicial_confirmations (recording_id, reference, court,"
        " decided_at, recorded_by, recorded_at) VALUES ($1, $2, $3, $4, $5, $6)"
        f" RETURNING {CONFIRMATION_COLUMNS}",
        recording_id, reference, court, decided_at, recorded_by, recorded_at)
    assert row is not None  # RETURNING of a successful INSERT
    return row


async def holds_of(conn: Connection, recording_id: uuid.UUID) -> list[asyncpg.Record]:
    """Every hold of the recording, standing or released, oldest first."""
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT id, reason, case_reference, justification, placed_by, placed_at,"
        " released_by, released_at, release_justification"
        " FROM review.holds WHERE recording_id = $1 ORDER BY placed_at, id", recording_id)
    return rows
