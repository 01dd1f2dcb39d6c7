"""SQL of the holds API: finding and locking one hold. Writing holds, releases and reviews is
the same SQL as the consumer's (``repository.insert_hold`` / ``release_hold`` /
``insert_review``), so a hold placed here and its event coming back are one row. Functions
take a connection; the caller owns the transaction."""

from __future__ import annotations

import uuid

import asyncpg

from bwc.db import Connection

HOLD_COLUMNS = ("id, recording_id, reason, case_reference, justification, placed_by, placed_at,"
                " released_by, released_at, release_justification")


async def recording_of(conn: Connection, hold_id: uuid.UUID) -> uuid.UUID | None:
    """The recording a hold is on (it never changes), read before its row is locked: locks are
    taken recording first, then hold, the order placements use too."""
    recording_id: uuid.UUID | None = await conn.fetchval(
        "SELECT recording_id FROM review.holds WHERE id = $1", hold_id)
    return recording_id


async def lock_hold(conn: Connection, hold_id: uuid.UUID) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {HOLD_COLUMNS} FROM review.holds WHERE id = $1 FOR UPDATE", hold_id)
    return row
