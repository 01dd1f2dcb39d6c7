"""Creating an upload: the database row first, then the S3 multipart upload.

In this order S3 never holds bytes the database does not know of (R5): a crash after S3
created the multipart upload but before its id was recorded leaves a ``creating`` row, and the
janitor aborts every multipart upload of that row's key (found by key, the one listing this
needs, on a path that only runs after a crash).
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

import asyncpg

from bwc.problems import Problem
from services.ingest import repository as repo
from services.ingest.protocol import RETRY_AFTER, tus_headers
from services.ingest.store import StorageFull, UploadStore

log = logging.getLogger(__name__)


async def create_multipart_upload(
    pool: asyncpg.Pool, store: UploadStore, *, upload_id: uuid.UUID, device_id: str,
    length: int, metadata_header: str, metadata: dict[str, Any], object_key: str,
    content_type: str, recorded_at: str, expires_at: datetime,
) -> None:
    async with pool.acquire() as conn:
        await repo.insert_upload(
            conn, upload_id=upload_id, device_id=device_id, length=length,
            metadata_header=metadata_header, metadata=metadata, object_key=object_key,
            expires_at=expires_at)
    try:
        s3_upload_id = await store.create(upload_id, key=object_key, content_type=content_type,
                                          recorded_at=recorded_at)
    except StorageFull as exc:
        log.error("object storage is full", extra={"recording_id": str(upload_id)})
        raise Problem(507, "Object storage full",
                      "object storage has no space left; retry once space is freed",
                      headers=tus_headers()) from exc
    except Exception as exc:
        # S3 may have created it even so (an answer lost on the way): the row stays
        # ``creating`` and the janitor aborts whatever exists under the key.
        log.warning("creating a multipart upload failed", extra={
            "recording_id": str(upload_id), "error": repr(exc)})
        raise Problem(503, "Object storage unavailable",
                      "the upload could not be created; retry after the time in Retry-After",
                      headers=tus_headers(**{"Retry-After": RETRY_AFTER})) from exc
    async with pool.acquire() as conn:
        if await repo.start_receiving(conn, upload_id, s3_upload_id):
            return
        # The S3 call outlasted the recovery grace and the janitor closed the row meanwhile:
        # the multipart upload S3 just made is known to no row. The closed row removes it (by
        # key) until S3 confirms, and the device is not told of an upload that is gone.
        await repo.require_cleanup(conn, upload_id)
    log.warning("upload closed while its multipart upload was being created",
                extra={"recording_id": str(upload_id)})
    raise Problem(503, "Object storage too slow",
                  "the upload could not be created in time; retry after the time in Retry-After",
                  headers=tus_headers(**{"Retry-After": RETRY_AFTER}))
