"""Removing the stored bytes of an upload (R5), step by step, each step tried on its own.

The row says what is still to go (``cleanup_pending``, set in the same transaction that ends
the upload), so a crash or an S3 outage in the middle leaves work the janitor repeats until
S3 confirms every step — never bytes nothing knows about.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from bwc.db import Connection
from bwc.s3 import ObjectStore
from services.ingest import repository as repo
from services.ingest import tails
from services.ingest.metrics import CLEANUP_FAILURES
from services.ingest.repository import Upload

log = logging.getLogger(__name__)


async def _step(name: str, upload: Upload, action: Callable[[], Awaitable[object]]) -> bool:
    try:
        await action()
    except Exception as exc:
        CLEANUP_FAILURES.labels(name).inc()
        log.warning("removal step failed; the janitor retries it",
                    extra={"recording_id": str(upload.id), "step": name, "error": repr(exc)})
        return False
    return True


async def remove_everything(store: ObjectStore, upload: Upload) -> bool:
    """Every byte of an upload that is not kept: multipart parts, object versions, tails.

    Every step is attempted even if an earlier one failed; ``True`` once all succeeded.
    """
    key, s3_id = upload.object_key, upload.s3_upload_id
    results = [
        # No recorded upload id: the process died right after creating it; find it by key.
        await _step("abort_multipart", upload,
                    (lambda: store.abort_multipart(key, s3_id)) if s3_id is not None
                    else (lambda: store.abort_all_multipart(key))),
        await _step("delete_object", upload, lambda: store.delete_all_versions(key)),
        await _step("delete_tails", upload, lambda: tails.remove_all(store, upload.id)),
    ]
    return all(results)


async def remove_tails(store: ObjectStore, upload: Upload) -> bool:
    """After completion only the tails go; the recording stays."""
    return await _step("delete_tails", upload, lambda: tails.remove_all(store, upload.id))


async def finish_pending(conn: Connection, store: ObjectStore, upload: Upload) -> bool:
    """Do the removal the row still asks for; clear the flag once it is done."""
    if upload.state.closed:
        done = await remove_everything(store, upload)
    else:
        done = await remove_tails(store, upload)
    if done:
        await repo.cleanup_done(conn, upload.id)
    return done
