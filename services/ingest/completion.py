"""Turning a fully received upload into a stored, hashed, announced recording.

Completion is idempotent so that the janitor can repeat it after a crash at any step: the
store's ``finish`` re-uploads a last part under the same number, recognises an already
completed multipart upload by the object being there, and the event is written only with the
final state.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bwc.db import Connection
from bwc.deadline import is_past_deadline
from bwc.events import CloudEvent, RecordingIngestedV1, Topic
from bwc.outbox import enqueue
from services.ingest import repository as repo
from services.ingest.repository import Upload
from services.ingest.states import UploadState
from services.ingest.store import StoredBytesLost, UploadStore

log = logging.getLogger(__name__)

SOURCE = "/bwc/ingest"


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


async def complete_upload(conn: Connection, store: UploadStore, upload: Upload) -> Outcome:
    """Finish ``upload``; ``conn`` is the connection holding the upload's lock.

    Order, and why: the R2 deadline first, before any S3 step, so that an upload whose
    completion keeps failing is still removed once its deadline passes; then the S3 steps; then
    the deadline again against the moment of the commit (reading back a large file, when the
    running hash was lost, takes a while);
    then one transaction that marks the upload completed — the only point at which the device
    is shown the full offset — and enqueues the event; then the tails go.
    """
    if (past := _past_deadline(upload)) is not None:
        return await reject(conn, store, upload, **past)
    try:
        finished = await store.finish(upload)
    except StoredBytesLost as exc:
        log.error("stored bytes of an upload are lost", extra={"recording_id": str(upload.id)})
        return await reject(conn, store, upload, status=500, title="Upload lost",
                            detail=f"{exc}; the device must upload the recording again")
    sha256, size, version_id = finished.sha256, finished.size, finished.version_id

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
    if await store.discard(upload):
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


async def reject(
    conn: Connection, store: UploadStore, upload: Upload, *, status: int, title: str,
    detail: str, state: UploadState = UploadState.REJECTED, field: str | None = None,
) -> Outcome:
    """Close the upload, then remove every stored byte of it (nothing half-kept, R5).

    Closed first: whatever fails afterwards, the row says what is left to remove and the
    janitor retries it; the reason stays for the device to read (410).
    """
    await repo.mark_closed(conn, upload.id, state=state, reason=f"{title}: {detail}")
    if await store.abort(upload):
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
