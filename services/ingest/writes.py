"""The write path of one tus upload: a bounded write slot, the upload's lock, then bytes.

Kept apart from the HTTP routes (``tus``) and from where the bytes go (``store``), so the order
of guarantees is visible in one place: device cap → slot → lock → state checks → store.append
(body → parts) → store.seal (tail segment or last part) → offset commit → store.committed →
completion.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import asyncpg
from fastapi import Request, Response
from starlette.background import BackgroundTask

from bwc.db import Connection
from bwc.deadline import is_past_deadline
from bwc.problems import Problem
from services.ingest import repository as repo
from services.ingest.chunks import Body, ChunkChecksum, TransferGuard, drain
from services.ingest.completion import (
    complete_upload,
    deadline_of,
    expiry_from,
    expiry_reason,
    reject,
)
from services.ingest.config import IngestSettings
from services.ingest.metrics import COMPLETION_FAILURES, WRITES_CUT_OFF, WRITES_REFUSED
from services.ingest.protocol import RETRY_AFTER, http_date, tus_headers
from services.ingest.repository import Upload
from services.ingest.states import UploadState
from services.ingest.store import Chunk, StorageFull, StorageUnavailable, UploadStore

log = logging.getLogger(__name__)



@contextlib.asynccontextmanager
async def device_write(request: Request, settings: IngestSettings, device_id: str
                       ) -> AsyncIterator[None]:
    """At most ``ingest_max_writes_per_device`` PATCHes of one device at once (per instance),
    so that one device cannot hold every write slot."""
    writing: Counter[str] = request.app.state.device_writes
    if writing[device_id] >= settings.ingest_max_writes_per_device:
        WRITES_REFUSED.labels("device_cap").inc()
        raise Problem(429, "Too many writes from this device",
                      f"device {device_id!r} already has {writing[device_id]} PATCH requests "
                      f"writing on this instance (at most {settings.ingest_max_writes_per_device}"
                      "); retry after the time in Retry-After",
                      headers=tus_headers(**{"Retry-After": RETRY_AFTER}))
    writing[device_id] += 1
    try:
        yield
    finally:
        writing[device_id] -= 1
        if not writing[device_id]:
            del writing[device_id]


@contextlib.asynccontextmanager
async def write_slot(request: Request, settings: IngestSettings) -> AsyncIterator[None]:
    """At most ``ingest_max_concurrent_writes`` writers per process; queue briefly, then 503."""
    slots: asyncio.Semaphore = request.app.state.write_slots
    try:
        await asyncio.wait_for(slots.acquire(), settings.ingest_write_wait)
    except TimeoutError:
        WRITES_REFUSED.labels("slots_busy").inc()
        raise Problem(503, "Ingest busy",
                      f"all {settings.ingest_max_concurrent_writes} write slots of this instance "
                      "are in use; retry after the time in Retry-After",
                      headers=tus_headers(**{"Retry-After": RETRY_AFTER})) from None
    try:
        yield
    finally:
        slots.release()


@contextlib.asynccontextmanager
async def locked_upload(pool: asyncpg.Pool, upload_id: uuid.UUID) -> AsyncIterator[Connection]:
    """The connection holding the upload's lock, for all the request's database work.

    A request never waits for a second connection while holding one (no pool deadlock under
    load), and if this process dies Postgres drops the lock with the connection.
    """
    async with pool.acquire() as conn:
        if not await repo.try_lock(conn, upload_id):
            raise Problem(423, "Upload busy",
                          "another request is writing to or completing this upload; retry "
                          "after the time in Retry-After",
                          headers=tus_headers(**{"Retry-After": RETRY_AFTER}))
        try:
            yield conn
        finally:
            await repo.unlock(conn, upload_id)


@contextlib.contextmanager
def storage_trouble(upload: Upload) -> Iterator[None]:
    """Object storage failing while a PATCH stores bytes is 503 + Retry-After, not a 500: the
    offset stays where it was, and the device resumes from HEAD once S3 is back. Out of space
    is 507: retrying soon will not help, an operator must act."""
    try:
        yield
    except StorageFull as exc:
        log.error("object storage is full", extra={
            "recording_id": str(upload.id), "error": str(exc)})
        raise Problem(507, "Object storage full",
                      "object storage has no space left for the bytes of this request; nothing "
                      f"of it was kept: resume at Upload-Offset {upload.offset} once space is "
                      "freed", headers=tus_headers(**{"Upload-Offset": str(upload.offset)})
                      ) from exc
    except StorageUnavailable as exc:
        log.warning("object storage failed during a PATCH", extra={
            "recording_id": str(upload.id), "error": str(exc)})
        raise Problem(503, "Object storage unavailable",
                      f"the bytes of this request could not be stored ({exc}); nothing of it "
                      f"was kept: resume at Upload-Offset {upload.offset} after the time in "
                      "Retry-After",
                      headers=tus_headers(**{"Retry-After": RETRY_AFTER,
                                             "Upload-Offset": str(upload.offset)})) from exc


def _header_safe(text: str) -> str:
    return "".join(c if " " <= c <= "~" else "?" for c in text)[:300]


def closed(upload: Upload, reason: str | None = None) -> Problem:
    """410 for an upload that ended without a recording; the reason also as a header, since a
    HEAD answer has no body."""
    why = reason or upload.reason or upload.state
    return Problem(410, "Upload closed", f"upload {upload.id} is {upload.state}: {why}",
                   reason=why,
                   headers=tus_headers(**{"Bwc-Upload-Reason": _header_safe(why)}))


CUT_OFF_TITLES = {"slow": "Transfer too slow", "idle": "Body stalled",
                  "shutdown": "Server shutting down"}


def announced_length(request: Request) -> int | None:
    """The body's Content-Length (the HTTP server refused a malformed one); ``None`` when the
    body is sent in chunked transfer encoding."""
    value = request.headers.get("content-length")
    return int(value) if value is not None and value.isdigit() else None


def guard_for(settings: IngestSettings, request: Request, upload: Upload) -> TransferGuard:
    return TransferGuard(idle_timeout=settings.ingest_body_idle_timeout,
                         stop=request.app.state.shutting_down,
                         min_rate=settings.ingest_min_rate, grace=settings.ingest_min_rate_grace,
                         window=settings.ingest_min_rate_window, deadline=deadline_of(upload))


async def append(
    conn: Connection, upload_id: uuid.UUID, offset: int, checksum: ChunkChecksum | None,
    request: Request, store: UploadStore, settings: IngestSettings,
) -> Response:
    """Append the request body at ``offset``; the caller holds the upload's lock on ``conn``."""
    upload = await repo.get_upload(conn, upload_id)
    assert upload is not None
    if upload.state.closed:
        raise closed(upload)
    if upload.state == UploadState.CREATING:
        raise Problem(409, "Upload not ready", "the upload is still being created; retry",
                      headers=tus_headers(**{"Retry-After": RETRY_AFTER}))
    if upload.state == UploadState.RECEIVING and (
        reason := expiry_reason(upload, datetime.now(UTC))
    ) is not None:
        await reject(conn, store, upload, status=410, title="Expired", detail=reason,
                     state=UploadState.TERMINATED)
        raise closed(upload, reason)
    if offset != upload.offset:
        raise Problem(409, "Offset mismatch",
                      f"Upload-Offset is {offset} but the upload is at {upload.offset}; "
                      "HEAD the upload and resume from there",
                      headers=tus_headers(**{"Upload-Offset": str(upload.offset)}))
    if upload.state == UploadState.COMPLETED:
        # Only reachable with offset == length: a repeat after success, answered the same.
        return Response(status_code=204, headers=tus_headers(
            **{"Upload-Offset": str(upload.offset)}))
    if upload.state == UploadState.COMPLETING:
        return await rejoin(conn, store, upload, checksum, request, settings)

    body = Body(request.stream(), remaining=upload.length - upload.offset, checksum=checksum,
                guard=guard_for(settings, request, upload))
    with storage_trouble(upload):
        chunk = await store.append(upload, body, expected=announced_length(request))
    if body.cut_off is not None and body.cut_off.kind == "deadline":
        # R2: nothing of it may be kept any more, not even what this PATCH brought.
        WRITES_CUT_OFF.labels("deadline").inc()
        detail = (f"the recording had to be deleted by {deadline_of(upload).isoformat()} (R2) "
                  "before its upload completed; its bytes were removed")
        await reject(conn, store, upload, status=422, title="Retention deadline passed",
                     detail=detail, state=UploadState.TERMINATED, field="recorded_at")
        raise Problem(422, "Retention deadline passed", detail, field="recorded_at",
                      headers=tus_headers())
    if checksum is not None and body.cut_off is not None:
        # Not 460: the chunk is not corrupt, the server ended it. Part of a chunk cannot be
        # verified, so nothing of it is kept; the device sends it again.
        WRITES_CUT_OFF.labels(body.cut_off.kind).inc()
        raise Problem(503, CUT_OFF_TITLES[body.cut_off.kind],
                      f"{body.cut_off.detail}; the request was ended before its "
                      "Upload-Checksum could be verified, so nothing of it was kept: resend it "
                      f"from Upload-Offset {upload.offset}",
                      headers=tus_headers(**{"Retry-After": RETRY_AFTER,
                                             "Upload-Offset": str(upload.offset)}))
    if checksum is not None and (body.disconnected or not checksum.matches()):
        # A chunk that cannot be verified is not kept; the offset stays where it was.
        raise Problem(460, "Checksum mismatch",
                      f"the {checksum.algorithm} of the request body does not match "
                      "Upload-Checksum; nothing of it was kept",
                      headers=tus_headers(**{"Upload-Offset": str(upload.offset)}))
    new_offset = chunk.end

    async def announce(key: str, start: int) -> None:
        await repo.announce_segment(conn, upload_id, key, start)

    with storage_trouble(upload):
        await store.seal(upload, chunk, ledger=announce)
    # Every byte of this PATCH is stored: this is the moment it ended (R2, uploaded_at).
    now = datetime.now(UTC)
    expires_at = expiry_from(now, settings.ingest_upload_expiry, deadline_of(upload))
    if not await repo.advance_upload(conn, upload, chunk, expires_at=expires_at,
                                     received_at=now):
        raise Problem(409, "Offset mismatch", "the upload moved on meanwhile; HEAD and resume",
                      headers=tus_headers())
    store.committed(upload, chunk)
    if body.cut_off is None and new_offset < upload.length:
        # The device may send its next chunk while the segments that went into a part are
        # removed (R5 still holds if that fails or the process dies: ``forget_later``).
        return Response(status_code=204, headers=tus_headers(
            **{"Upload-Offset": str(new_offset), "Upload-Expires": http_date(expires_at)}),
            background=BackgroundTask(forget_later, request.app.state.pool, store, chunk)
            if chunk.superseded else None)
    await forget_superseded(conn, store, chunk)
    if body.cut_off is not None:
        WRITES_CUT_OFF.labels(body.cut_off.kind).inc()
        raise Problem(503, CUT_OFF_TITLES[body.cut_off.kind],
                      f"{body.cut_off.detail}; the request was ended and the "
                      f"{chunk.received} bytes that arrived are kept: resume at Upload-Offset "
                      f"{new_offset if new_offset < upload.length else upload.offset}",
                      headers=tus_headers(**{"Retry-After": RETRY_AFTER}))
    finished = await repo.get_upload(conn, upload_id)
    assert finished is not None
    return await finish(conn, store, finished)


async def forget_superseded(conn: Connection, store: UploadStore, chunk: Chunk) -> None:
    """Remove the segments a committed chunk turned into a part. Best effort: the bytes are
    committed, so a failure here is not the device's; the rows keep naming the segments and
    the completion or the janitor removes them (R5)."""
    try:
        if removed := await store.release(chunk):
            await repo.forget_segments(conn, chunk.upload_id, removed)
    except Exception as exc:
        log.warning("superseded segments left for later removal", extra={
            "recording_id": str(chunk.upload_id), "error": repr(exc)})


async def forget_later(pool: asyncpg.Pool, store: UploadStore, chunk: Chunk) -> None:
    """``forget_superseded`` after the answer was sent, without the upload's lock. It never
    loses track of an object (R5): a segment's row goes only after S3 confirmed its removal,
    so if this fails or the process dies first, the rows still name the segments and the
    completion (``discard``) or the closing of the upload (``abort``, retried by the janitor
    while ``cleanup_pending``) removes them. A PATCH running meanwhile does not touch them:
    they lie below the upload's last part, where no PATCH reads."""
    try:
        if removed := await store.release(chunk):
            async with pool.acquire() as conn:
                await repo.forget_segments(conn, chunk.upload_id, removed)
    except Exception as exc:
        log.warning("superseded segments left for later removal", extra={
            "recording_id": str(chunk.upload_id), "error": repr(exc)})


async def rejoin(
    conn: Connection, store: UploadStore, upload: Upload, checksum: ChunkChecksum | None,
    request: Request, settings: IngestSettings,
) -> Response:
    """A PATCH on an upload whose bytes are all stored but not yet verified: the device is
    re-sending what it sent after the offset it was shown (standard tus clients do that when
    their last PATCH got no answer). The bytes are read, not stored again; once the device
    has re-sent up to the end, the completion is finished under this request's lock and the
    device gets its real outcome, never a premature success."""
    received, complete = await drain(request.stream(), remaining=upload.length - upload.offset,
                                     checksum=checksum,
                                     guard=guard_for(settings, request, upload))
    if checksum is not None and not complete:
        # Ended by the server (or the device went away): unverifiable, not corrupt (not 460).
        raise Problem(503, "Body ended", "the request ended before its Upload-Checksum could "
                      f"be verified; resend it from Upload-Offset {upload.offset}",
                      headers=tus_headers(**{"Retry-After": RETRY_AFTER,
                                             "Upload-Offset": str(upload.offset)}))
    if checksum is not None and not checksum.matches():
        raise Problem(460, "Checksum mismatch",
                      f"the {checksum.algorithm} of the request body does not match "
                      "Upload-Checksum; nothing of it was kept",
                      headers=tus_headers(**{"Upload-Offset": str(upload.offset)}))
    reached = upload.offset + received
    # Past the R2 deadline (the body was ended there) the completion's first step removes it.
    if reached < upload.length and not is_past_deadline(deadline_of(upload),
                                                        now=datetime.now(UTC)):
        await repo.confirm_offset(conn, upload.id, offset=reached)
        return Response(status_code=204, headers=tus_headers(**{"Upload-Offset": str(reached)}))
    return await finish(conn, store, upload)


async def finish(conn: Connection, store: UploadStore, upload: Upload) -> Response:
    try:
        outcome = await complete_upload(conn, store, upload)
    except Exception as exc:
        # Bytes are all stored; the completion is repeated (by the device's retry or the
        # janitor). The device is told to come back, not that the upload is done.
        COMPLETION_FAILURES.labels("request").inc()
        log.exception("completion failed; it will be retried",
                      extra={"recording_id": str(upload.id)})
        raise Problem(503, "Completion pending",
                      f"all bytes are stored but the recording could not be verified yet "
                      f"({type(exc).__name__}); repeat the last PATCH (HEAD shows where it "
                      "starts) after the time in Retry-After",
                      headers=tus_headers(**{"Retry-After": RETRY_AFTER})) from exc
    if not outcome.completed:
        raise Problem(outcome.status, outcome.title, outcome.detail, headers=tus_headers(),
                      **({"field": outcome.field} if outcome.field else {}))
    return Response(status_code=204, headers=tus_headers(
        **{"Upload-Offset": str(upload.length)}))
