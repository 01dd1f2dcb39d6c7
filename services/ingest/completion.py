"""Turning a fully received upload into a stored, hashed, announced recording.

Completion is idempotent so that the janitor can repeat it after a crash at any step:
the last part is re-uploaded under the same number, an already completed multipart upload is
recognised by the object being there, and the event is written only with the final state.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from minio.error import S3Error

from bwc.db import Connection
from bwc.deadline import is_past_deadline
from bwc.events import CloudEvent, RecordingIngestedV1, Topic
from bwc.outbox import enqueue
from bwc.s3 import ObjectStore, UploadedPart
from services.ingest import cleanup, tails
from services.ingest import repository as repo
from services.ingest.repository import Upload
from services.ingest.states import UploadState

log = logging.getLogger(__name__)

SOURCE = "/bwc/ingest"


class StoredBytesLost(Exception):
    """Neither the multipart upload nor the finished object exists any more."""


@dataclass(frozen=True)
class Outcome:
    completed: bool
    status: int = 204
    title: str = ""
    detail: str = ""
    field: str | None = None


def deadline_of(upload: Upload) -> datetime:
    """The R2 deadline stored with the upload (computed once, at creation, by ``bwc.deadline``)."""
    return datetime.fromisoformat(upload.metadata["delete_after"])


async def complete_upload(conn: Connection, store: ObjectStore, upload: Upload) -> Outcome:
    """Finish ``upload``; ``conn`` is the connection holding the upload's lock.

    Order, and why: the R2 deadline first, before any S3 step, so that an upload whose
    completion keeps failing is still removed once its deadline passes; then the S3 steps; then
    the deadline again against the moment of the commit (hashing a large file takes a while);
    then one transaction that marks the upload completed — the only point at which the device
    is shown the full offset — and enqueues the event; then the tails go.
    """
    if (past := _past_deadline(upload)) is not None:
        return await reject(conn, store, upload, **past)
    parts = list(upload.parts)
    if upload.tail_size or not parts:
        tail = await tails.load(store, upload)
        number, size = len(parts) + 1, len(tail)
        etag = await store.upload_part(upload.object_key, _s3_id(upload), number, tail)
        del tail  # one part in memory at most, also here
        part = UploadedPart(number, etag, size)
        parts.append(part)
        await repo.save_last_part(conn, upload.id, part)

    try:
        version_id = await _complete_or_find(store, upload, parts)
    except StoredBytesLost as exc:
        log.error("stored bytes of an upload are lost", extra={"recording_id": str(upload.id)})
        return await reject(conn, store, upload, status=500, title="Upload lost",
                            detail=f"{exc}; the device must upload the recording again")
    sha256, size = await store.sha256(upload.object_key, version_id)

    meta = upload.metadata
    if size != upload.length:
        return await reject(conn, store, upload, status=500, title="Stored size mismatch",
                            detail=f"stored {size} bytes, expected {upload.length}")
    if meta.get("sha256") and meta["sha256"] != sha256:
        # Not 460: that tells tus clients to resend a chunk, but the whole upload is gone.
        return await reject(
            conn, store, upload, status=422, title="Checksum mismatch", field="sha256",
            detail=f"Upload-Metadata 'sha256': the stored file has SHA-256 {sha256}, the "
                   f"device declared {meta['sha256']}; the upload is rejected and its bytes "
                   "removed")
    if (past := _past_deadline(upload)) is not None:
        return await reject(conn, store, upload, **past)

    # When the last byte was stored, not when this (possibly repeated) completion ran (R2).
    uploaded_at = upload.received_at or datetime.now(UTC)
    event = CloudEvent.wrap(
        source=SOURCE,
        subject=str(upload.id),
        data=RecordingIngestedV1(
            recording_id=upload.id,
            device_id=upload.device_id,
            officer_id=meta.get("officer_id"),
            recorded_at=meta["recorded_at"],
            ended_at=meta.get("ended_at"),
            uploaded_at=uploaded_at,
            size_bytes=size,
            sha256=sha256,
            content_type=meta["content_type"],
            filename=meta.get("filename"),
            trigger_reason=meta["trigger_reason"],
            announced=meta["announced"],
            imminent_danger=meta["imminent_danger"],
            in_home=meta["in_home"],
            location=meta.get("location"),
            bucket=store.bucket,
            object_key=upload.object_key,
            object_version_id=version_id,
            delete_after=deadline_of(upload),
        ),
    )
    async with conn.transaction():
        if not await repo.mark_completed(conn, upload.id, sha256=sha256, version_id=version_id):
            raise RuntimeError(f"upload {upload.id} left 'completing' while locked")
        await enqueue(conn, schema="ingest", topic=Topic.RECORDINGS, key=str(upload.id),
                      event=event)
    # The recording is committed: a failure from here on is the janitor's (cleanup_pending),
    # never the device's.
    if await cleanup.remove_tails(store, upload):
        await repo.cleanup_done(conn, upload.id)
    log.info("recording ingested", extra={"recording_id": str(upload.id), "size_bytes": size})
    return Outcome(completed=True)


def _past_deadline(upload: Upload) -> dict[str, Any] | None:
    """The rejection to make if the upload's R2 deadline has passed now, else ``None``."""
    deadline = deadline_of(upload)
    if not is_past_deadline(deadline, now=datetime.now(UTC)):
        return None
    return {"status": 422, "title": "Retention deadline passed", "field": "recorded_at",
            "detail": f"the recording had to be deleted by {deadline.isoformat()} (R2) before "
                      "its upload completed; its bytes were removed"}


def _s3_id(upload: Upload) -> str:
    if upload.s3_upload_id is None:
        raise RuntimeError(f"upload {upload.id} has no multipart upload")
    return upload.s3_upload_id


async def _complete_or_find(
    store: ObjectStore, upload: Upload, parts: list[UploadedPart]
) -> str | None:
    try:
        return await store.complete_multipart(upload.object_key, _s3_id(upload), parts)
    except S3Error as exc:
        if exc.code != "NoSuchUpload":
            raise
    # Completed by an earlier attempt that crashed before recording it.
    stat = await store.stat(upload.object_key)
    if stat is None:
        raise StoredBytesLost(f"upload {upload.id}: the multipart upload and the object are gone")
    version_id: str | None = stat.version_id
    return version_id


async def reject(
    conn: Connection, store: ObjectStore, upload: Upload, *, status: int, title: str,
    detail: str, state: UploadState = UploadState.REJECTED, field: str | None = None,
) -> Outcome:
    """Close the upload, then remove every stored byte of it (nothing half-kept, R5).

    Closed first: whatever fails afterwards, the row says what is left to remove and the
    janitor retries it; the reason stays for the device to read (410).
    """
    await repo.mark_closed(conn, upload.id, state=state, reason=f"{title}: {detail}")
    if await cleanup.remove_everything(store, upload):
        await repo.cleanup_done(conn, upload.id)
    log.warning("upload closed", extra={"recording_id": str(upload.id), "state": state,
                                        "reason": title})
    return Outcome(completed=False, status=status, title=title, detail=detail, field=field)


def expiry_reason(upload: Upload, now: datetime) -> str | None:
    """Why a receiving upload may not go on, or ``None`` while it may."""
    if is_past_deadline(deadline_of(upload), now=now):
        return "the R2 deadline passed before the upload finished; nothing of it is kept"
    if upload.expires_at <= now:
        return "expired: no data arrived before Upload-Expires"
    return None


def expiry_from(now: datetime, expiry: timedelta, delete_after: datetime) -> datetime:
    """An unfinished upload expires after ``expiry`` idle time, never after its R2 deadline."""
    return min(now + expiry, delete_after)
