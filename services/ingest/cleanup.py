"""Finishing the removal of an ended upload's stored bytes (R5) that the row still asks for.

The row says what is still to go (``cleanup_pending``, set in the same transaction that ends
the upload; its segment rows name every object below a part), so a crash or an S3 outage in
the middle leaves work the janitor repeats until S3 confirms every step — never bytes nothing
knows about. The steps themselves are the store's (``abort``, ``discard``).
"""

from __future__ import annotations

from bwc.db import Connection
from services.ingest import repository as repo
from services.ingest.repository import Upload
from services.ingest.store import UploadStore


async def finish_pending(conn: Connection, store: UploadStore, upload: Upload) -> bool:
    """Do the removal the row still asks for; clear the flag once it is done."""
    if upload.state.closed:
        done = await store.abort(upload)
    else:
        done = await store.discard(upload)
    if done:
        await repo.cleanup_done(conn, upload.id)
    return done
