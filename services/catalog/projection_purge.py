"""Bounds ``pending_events`` (R5): an event whose recording never arrives is removed at
``kept_until`` (its occurrence time plus the retention period). A hold, review or deletion
happens after the recording was made, so by then the recording is past its R2 deadline: it is
deleted, or was refused at ingest, and what the event says about it may not be kept either.
Runs under the supervisor every ``BWC_CATALOG_PENDING_PURGE_INTERVAL`` seconds."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import asyncpg
from prometheus_client import Counter

from services.catalog import repository as repo

log = logging.getLogger(__name__)

PURGED = Counter("bwc_catalog_pending_purged_total",
                 "Events purged from pending_events because their recording never arrived")


async def purge_once(pool: asyncpg.Pool, *, now: datetime | None = None) -> int:
    async with pool.acquire() as conn, conn.transaction():
        purged = await repo.purge_pending(conn, now=now or datetime.now(UTC))
    for row in purged:
        # Ids only (R5). An event that waited this long points at a lost recording.ingested:
        # look in dead_letters.
        log.error("purged an event whose recording never arrived", extra={
            "event_id": row["event_id"], "type": row["type"],
            "recording_id": str(row["recording_id"]),
            "occurred_at": row["occurred_at"].isoformat()})
    PURGED.inc(len(purged))
    return len(purged)


async def run(pool: asyncpg.Pool, interval: float) -> None:
    """Purge every ``interval`` seconds; a failure propagates to the supervisor."""
    while True:
        await purge_once(pool)
        await asyncio.sleep(interval)
