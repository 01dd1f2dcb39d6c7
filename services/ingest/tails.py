"""The bytes of an upload that do not fill an S3 part yet ("tail") wait in object storage.

Layout: ``incomplete/<upload id>/tail-<start>-<end>``, one object per state, named by the byte
range it holds, so an object is never overwritten: a PATCH writes the new tail under a new
key, commits it in Postgres, then removes the previous one. The superseded version is removed by its
version id, so a PATCH never lists the bucket. A crash in between leaves at most an
unreferenced object under the upload's prefix, which completion and rejection remove
wholesale (every version, R5). Video bytes thus never enter Postgres, its WAL or backups.
"""

from __future__ import annotations

import logging
import uuid

from minio.error import S3Error

from bwc.s3 import ObjectStore
from services.ingest.repository import Upload

log = logging.getLogger(__name__)


def prefix(upload_id: uuid.UUID) -> str:
    return f"incomplete/{upload_id}/"


async def load(store: ObjectStore, upload: Upload) -> bytes:
    if not upload.tail_size or upload.tail_key is None:
        return b""
    return await store.read_bytes(upload.tail_key, upload.tail_size)


async def save(
    store: ObjectStore, upload_id: uuid.UUID, *, end: int, data: bytes
) -> tuple[str | None, str | None]:
    """Store ``data`` as the tail ending at byte ``end``; returns ``(key, version id)``."""
    if not data:
        return None, None
    key = f"{prefix(upload_id)}tail-{end - len(data)}-{end}"
    return key, await store.put_bytes(key, data)


async def discard(store: ObjectStore, key: str | None, version_id: str | None) -> None:
    """Best effort: a leftover is removed with the prefix when the upload ends."""
    if key is None:
        return
    try:
        if version_id is None:
            await store.delete_all_versions(key)
        else:
            await store.delete_version(key, version_id)
    except S3Error as exc:
        log.warning("could not remove a superseded tail", extra={"key": key, "error": str(exc)})


async def remove_all(store: ObjectStore, upload_id: uuid.UUID) -> None:
    await store.delete_prefix(prefix(upload_id))
