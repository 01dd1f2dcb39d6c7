"""Periodic clean-up of uploads no request will finish.

- receiving uploads idle past ``Upload-Expires`` are aborted (tus expiration);
- receiving uploads whose R2 deadline passed are aborted: nothing of them may be kept;
- completions a crashed request left in ``completing`` are finished.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import asyncpg

from bwc.db import Connection
from bwc.s3 import ObjectStore
from services.ingest import repository as repo
from services.ingest.completion import complete_upload, expiry_reason, reject
from services.ingest.repository import Upload

log = logging.getLogger(__name__)

#: A completion younger than this is probably still running in its request.
COMPLETING_GRACE_S = 120.0


async def sweep_once(pool: asyncpg.Pool, store: ObjectStore) -> int:
    now = datetime.now(UTC)
    async with pool.acquire() as conn:
        stale = await repo.stale_uploads(conn, now=now, completing_grace_s=COMPLETING_GRACE_S)
    handled = 0
    for upload in stale:
        async with pool.acquire() as conn:
            if not await repo.try_lock(conn, upload.id):
                continue  # a request is working on it right now
            try:
                fresh = await repo.get_upload(conn, upload.id)
                if fresh is not None:
                    await _handle(conn, store, fresh, now)
                    handled += 1
            except Exception:
                log.exception("janitor failed on upload", extra={"recording_id": str(upload.id)})
                # To the back of the queue: a failing upload must not hold up the others.
                await repo.touch(conn, upload.id)
            finally:
                await repo.unlock(conn, upload.id)
    return handled


async def _handle(conn: Connection, store: ObjectStore, upload: Upload, now: datetime) -> None:
    if upload.state == "completing":
        await complete_upload(conn, store, upload)
    elif upload.state == "receiving":
        # Decided again under the lock: the device may have resumed since the selection.
        reason = expiry_reason(upload, now)
        if reason is not None:
            await reject(conn, store, upload, status=410, title="Expired", detail=reason,
                         state="terminated")


async def run(pool: asyncpg.Pool, store: ObjectStore, interval: float) -> None:
    """Sweep every ``interval`` seconds; a failed sweep propagates to the supervisor."""
    while True:
        await sweep_once(pool, store)
        await asyncio.sleep(interval)
