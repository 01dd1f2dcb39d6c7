"""The write path of one tus upload: a bounded write slot, the upload's lock, then bytes.

Kept apart from the HTTP routes (``tus``) and from the byte shuffling (``chunks``, ``tails``,
``completion``), so the order of guarantees is visible in one place: slot → lock → state
checks → stream into parts → tail → offset commit → completion.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
from fastapi import Request, Response

from bwc.db import Connection
from bwc.problems import Problem
from bwc.s3 import ObjectStore
from services.ingest import repository as repo
from services.ingest import tails
from services.ingest.chunks import ChunkChecksum, stream_into_parts
from services.ingest.completion import complete_upload, expiry_from, expiry_reason, reject
from services.ingest.config import IngestSettings
from services.ingest.protocol import http_date, tus_headers
from services.ingest.repository import Upload


@contextlib.asynccontextmanager
async def write_slot(request: Request, settings: IngestSettings) -> AsyncIterator[None]:
    """At most ``ingest_max_concurrent_writes`` writers per process; queue briefly, then 503."""
    slots: asyncio.Semaphore = request.app.state.write_slots
    try:
        await asyncio.wait_for(slots.acquire(), settings.ingest_write_wait)
    except TimeoutError:
        raise Problem(503, "Ingest busy",
                      f"all {settings.ingest_max_concurrent_writes} write slots of this instance "
                      "are in use; retry after the time in Retry-After",
                      headers=tus_headers(**{"Retry-After": "5"})) from None
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
            raise Problem(423, "Upload busy", "another request is writing to this upload",
                          headers=tus_headers())
        try:
            yield conn
        finally:
            await repo.unlock(conn, upload_id)


def closed(upload: Upload) -> Problem:
    return Problem(410, "Upload closed", f"upload {upload.id} is {upload.state}: {upload.reason}",
                   headers=tus_headers())


async def append(
    conn: Connection, upload_id: uuid.UUID, offset: int, checksum: ChunkChecksum | None,
    request: Request, store: ObjectStore, settings: IngestSettings,
) -> Response:
    """Append the request body at ``offset``; the caller holds the upload's lock on ``conn``."""
    upload = await repo.get_upload(conn, upload_id)
    assert upload is not None
    if upload.state in ("rejected", "terminated"):
        raise closed(upload)
    now = datetime.now(UTC)
    if upload.state == "receiving" and (reason := expiry_reason(upload, now)) is not None:
        await reject(conn, store, upload, status=410, title="Expired", detail=reason,
                     state="terminated")
        raise Problem(410, "Upload expired", reason, headers=tus_headers())
    if offset != upload.offset:
        raise Problem(409, "Offset mismatch",
                      f"Upload-Offset is {offset} but the upload is at {upload.offset}; "
                      "HEAD the upload and resume from there",
                      headers=tus_headers(**{"Upload-Offset": str(upload.offset)}))
    if upload.state == "completing":
        # All bytes are here but completion did not finish (it failed or its process died):
        # finish it now and give the device the real outcome, never a premature success.
        return await finish(conn, store, upload, now)
    if upload.state != "receiving":
        return Response(status_code=204, headers=tus_headers(
            **{"Upload-Offset": str(upload.offset)}))

    result = await stream_into_parts(
        request.stream(), store=store, object_key=upload.object_key,
        s3_upload_id=upload.s3_upload_id, first_part_number=len(upload.parts) + 1,
        tail=await tails.load(store, upload), part_size=settings.ingest_part_size,
        remaining=upload.length - upload.offset, checksum=checksum,
        idle_timeout=settings.ingest_body_idle_timeout)
    if checksum is not None and (result.disconnected or not checksum.matches()):
        # A chunk that cannot be verified is not kept; the offset stays where it was.
        raise Problem(460, "Checksum mismatch",
                      f"the {checksum.algorithm} of the request body does not match "
                      "Upload-Checksum; nothing of it was kept",
                      headers=tus_headers(**{"Upload-Offset": str(upload.offset)}))
    expires_at = expiry_from(now, settings.ingest_upload_expiry,
                             datetime.fromisoformat(upload.metadata["delete_after"]))
    new_offset = upload.offset + result.received
    tail_key, tail_version = upload.tail_key, upload.tail_version
    if result.new_parts or len(result.tail) != upload.tail_size:
        tail_key, tail_version = await tails.save(store, upload.id, end=new_offset,
                                                  data=result.tail)
    advanced = await repo.advance_upload(
        conn, upload, received=result.received, new_parts=result.new_parts,
        tail_key=tail_key, tail_version=tail_version, tail_size=len(result.tail),
        expires_at=expires_at)
    if not advanced:
        raise Problem(409, "Offset mismatch", "the upload moved on meanwhile; HEAD and resume",
                      headers=tus_headers())
    if tail_key != upload.tail_key:
        await tails.discard(store, upload.tail_key, upload.tail_version)
    headers = tus_headers(**{"Upload-Offset": str(new_offset)})
    if new_offset < upload.length:
        headers["Upload-Expires"] = http_date(expires_at)
        return Response(status_code=204, headers=headers)

    finished = await repo.get_upload(conn, upload_id)
    assert finished is not None
    return await finish(conn, store, finished, now)


async def finish(conn: Connection, store: ObjectStore, upload: Upload, now: datetime) -> Response:
    outcome = await complete_upload(conn, store, upload, now=now)
    if not outcome.completed:
        raise Problem(outcome.status, outcome.title, outcome.detail, headers=tus_headers(),
                      **({"field": outcome.field} if outcome.field else {}))
    return Response(status_code=204, headers=tus_headers(
        **{"Upload-Offset": str(upload.length)}))
