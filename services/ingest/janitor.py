"""Periodic clean-up of uploads no request will finish.

- an upload past its R2 deadline that is not completed is aborted and every byte of it
  removed, whatever else fails (its completion included);
- receiving uploads idle past ``Upload-Expires`` are aborted (tus expiration);
- creations a crashed request left in ``creating`` are aborted (the multipart upload S3 may
  hold is found by key);
- completions a crashed or failed request left in ``completing`` are finished (and counted
  while they stay stuck);
- stored bytes an ended upload still owes (``cleanup_pending``) are removed, until S3 confirms.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import asyncpg

from bwc.db import Connection
from services.ingest import cleanup
from services.ingest import repository as repo
from services.ingest.completion import complete_upload, expiry_reason, reject
from services.ingest.metrics import CLEANUP_PENDING, COMPLETION_FAILURES, COMPLETIONS_STUCK
from services.ingest.repository import Upload
from services.ingest.states import UploadState
from services.ingest.store import UploadStore

log = logging.getLogger(__name__)

#: A creation or completion younger than this is probably still running in its request.
COMPLETING_GRACE_S = 120.0


async def sweep_once(
    pool: asyncpg.Pool, store: UploadStore, *, recovery_grace: float = COMPLETING_GRACE_S
) -> int:
    now = datetime.now(UTC)
    async with pool.acquire() as conn:
        due = await repo.uploads_needing_work(conn, now=now, recovery_grace_s=recovery_grace)
    handled = 0
    for upload_id in due:
        async with pool.acquire() as conn:
            if not await repo.try_lock(conn, upload_id):
                continue  # a request is working on it right now
            try:
                fresh = await repo.get_upload(conn, upload_id)
                if fresh is not None:
                    await _handle(conn, store, fresh, datetime.now(UTC))
                    handled += 1
            except Exception:
                log.exception("janitor failed on upload", extra={"recording_id": str(upload_id)})
                # To the back of the queue: a failing upload must not hold up the others.
                await repo.touch(conn, upload_id)
            finally:
                await repo.unlock(conn, upload_id)
    async with pool.acquire() as conn:
        COMPLETIONS_STUCK.set(await repo.count_stuck_completions(
            conn, now=datetime.now(UTC), grace_s=recovery_grace))
        CLEANUP_PENDING.set(await repo.count_cleanup_pending(conn))
    return handled


async def _handle(conn: Connection, store: UploadStore, upload: Upload, now: datetime) -> None:
    # Decided again under the lock: the device may have resumed since the selection.
    if upload.state == UploadState.COMPLETING:
        try:
            # Its first step is the R2 deadline: past it, the upload is removed, not retried.
            await complete_upload(conn, store, upload)
        except Exception:
            COMPLETION_FAILURES.labels("janitor").inc()
            raise
    elif upload.state == UploadState.CREATING:
        await reject(conn, store, upload, status=410, title="Creation interrupted",
                     detail="the server failed while creating the upload; create it again",
                     state=UploadState.TERMINATED)
    elif upload.state == UploadState.RECEIVING:
        reason = expiry_reason(upload, now)
        if reason is not None:
            await reject(conn, store, upload, status=410, title="Expired", detail=reason,
                         state=UploadState.TERMINATED)
    elif upload.cleanup_pending:
        await cleanup.finish_pending(conn, store, upload)


async def run(
    pool: asyncpg.Pool, store: UploadStore, interval: float, *,
    recovery_grace: float = COMPLETING_GRACE_S,
) -> None:
    """Sweep every ``interval`` seconds; a failed sweep propagates to the supervisor."""
    while True:
        await sweep_once(pool, store, recovery_grace=recovery_grace)
        await asyncio.sleep(interval)
