"""tus 1.0 protocol handler: core + creation + checksum + termination + expiration.

Who may call: ``device`` only, and a device only for its own uploads (DESIGN §4). ``OPTIONS``
is open, as tus clients probe it before authenticating. The storage work is in ``chunks`` and
``completion``; this module speaks HTTP.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from email.utils import format_datetime

from fastapi import APIRouter, FastAPI, Request, Response

from bwc.auth import Principal
from bwc.db import Connection
from bwc.problems import Problem
from services.ingest import repository as repo
from services.ingest import tails
from services.ingest.chunks import CHECKSUM_ALGORITHMS, ChunkChecksum, stream_into_parts
from services.ingest.completion import complete_upload, expiry_from, expiry_reason, reject
from services.ingest.deps import DeviceDep, PoolDep, SettingsDep, StoreDep
from services.ingest.metadata import parse_header, validate
from services.ingest.repository import Upload

TUS_VERSION = "1.0.0"
EXTENSIONS = "creation,checksum,termination,expiration"
OFFSET_CONTENT_TYPE = "application/offset+octet-stream"

router = APIRouter(prefix="/files", tags=["tus"])


def install_tus_headers(app: FastAPI) -> None:
    """Every answer under ``/files`` carries ``Tus-Resumable``, errors from auth included."""

    @app.middleware("http")
    async def add_tus_resumable(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        if request.url.path.startswith(router.prefix):
            response.headers.setdefault("Tus-Resumable", TUS_VERSION)
        return response


def tus_headers(**extra: str) -> dict[str, str]:
    return {"Tus-Resumable": TUS_VERSION, **extra}


def require_tus_version(request: Request) -> None:
    version = request.headers.get("tus-resumable")
    if version != TUS_VERSION:
        raise Problem(412, "Unsupported tus version",
                      f"send 'Tus-Resumable: {TUS_VERSION}' (got {version!r})",
                      headers={"Tus-Version": TUS_VERSION})


def _http_date(value: datetime) -> str:
    return format_datetime(value.astimezone(UTC), usegmt=True)


def _parse_int_header(request: Request, name: str) -> int:
    raw = request.headers.get(name)
    if raw is None:
        raise Problem(400, f"Missing {name}", f"the {name} header is required",
                      headers=tus_headers())
    if not (raw.isascii() and raw.isdigit()):
        raise Problem(400, f"Invalid {name}", f"{name} must be a non-negative integer",
                      headers=tus_headers())
    return int(raw)


async def _load_own_upload(pool: PoolDep, upload_id: uuid.UUID, device: Principal) -> Upload:
    async with pool.acquire() as conn:
        upload = await repo.get_upload(conn, upload_id)
    # Another device's upload is reported as absent: ids are not to be probed.
    if upload is None or upload.device_id != device.sub:
        raise Problem(404, "Upload not found", f"no upload {upload_id}", headers=tus_headers())
    return upload


async def _ensure_device_allowed(pool: PoolDep, device_id: str) -> None:
    async with pool.acquire() as conn:
        device = await repo.get_device(conn, device_id)
    if device is None:
        raise Problem(403, "Device not registered",
                      f"device {device_id!r} is not registered; an admin registers it with "
                      "POST /api/v1/devices", headers=tus_headers())
    if not device["enabled"]:
        raise Problem(403, "Device disabled", f"device {device_id!r} is disabled",
                      headers=tus_headers())


def _closed(upload: Upload) -> Problem:
    return Problem(410, "Upload closed", f"upload {upload.id} is {upload.state}: {upload.reason}",
                   headers=tus_headers())


@router.options("/", status_code=204, summary="tus discovery (no auth)")
@router.options("/{upload_id}", status_code=204, include_in_schema=False)
async def options(settings: SettingsDep) -> Response:
    return Response(status_code=204, headers=tus_headers(
        **{"Tus-Version": TUS_VERSION, "Tus-Extension": EXTENSIONS,
           "Tus-Max-Size": str(settings.ingest_max_upload_size),
           "Tus-Checksum-Algorithm": ",".join(CHECKSUM_ALGORITHMS)}))


@router.post("/", status_code=201, summary="Create an upload (role: device)")
async def create_upload(
    request: Request, device: DeviceDep, pool: PoolDep, store: StoreDep, settings: SettingsDep
) -> Response:
    require_tus_version(request)
    if request.headers.get("upload-defer-length"):
        raise Problem(400, "Deferred length not supported",
                      "send Upload-Length; creation-defer-length is not offered",
                      headers=tus_headers())
    length = _parse_int_header(request, "Upload-Length")
    if length == 0:
        raise Problem(400, "Empty upload", "Upload-Length must be greater than 0",
                      headers=tus_headers())
    if length > settings.ingest_max_upload_size:
        raise Problem(413, "Upload too large",
                      f"Upload-Length {length} exceeds Tus-Max-Size "
                      f"{settings.ingest_max_upload_size}", headers=tus_headers())
    header = request.headers.get("upload-metadata", "")
    now = datetime.now(UTC)
    meta = validate(parse_header(header), now=now, retention_period=settings.retention_period,
                    clock_skew=settings.clock_skew)
    if meta.device_id != device.sub:
        raise Problem(403, "Wrong device",
                      f"Upload-Metadata 'device_id' is {meta.device_id!r} but the token is for "
                      f"device {device.sub!r}; a device uploads only as itself",
                      headers=tus_headers())
    await _ensure_device_allowed(pool, device.sub)
    if meta.officer_id is None:
        async with pool.acquire() as conn:
            registered = await repo.get_device(conn, device.sub)
        meta.officer_id = registered["officer_id"] if registered else None

    upload_id = uuid.uuid4()
    object_key = f"recordings/{upload_id}"
    delete_after = meta.delete_after(settings.retention_period)
    expires_at = expiry_from(now, settings.ingest_upload_expiry, delete_after)
    s3_upload_id = await store.create_multipart(object_key, content_type=meta.content_type)
    stored_meta = meta.model_dump(mode="json") | {"delete_after": delete_after.isoformat()}
    try:
        async with pool.acquire() as conn:
            await repo.insert_upload(
                conn, upload_id=upload_id, device_id=device.sub, length=length,
                metadata_header=header, metadata=stored_meta, object_key=object_key,
                s3_upload_id=s3_upload_id, expires_at=expires_at)
    except BaseException:
        await store.abort_multipart(object_key, s3_upload_id)
        raise
    location = str(request.url_for("head_upload", upload_id=upload_id))
    return Response(status_code=201, headers=tus_headers(
        Location=location, **{"Upload-Expires": _http_date(expires_at)}))


@router.head("/{upload_id}", name="head_upload", summary="Upload offset (role: device)")
async def head_upload(
    upload_id: uuid.UUID, request: Request, device: DeviceDep, pool: PoolDep
) -> Response:
    require_tus_version(request)
    upload = await _load_own_upload(pool, upload_id, device)
    await _ensure_device_allowed(pool, device.sub)
    if upload.state in ("rejected", "terminated") or (
        upload.state == "receiving" and expiry_reason(upload, datetime.now(UTC)) is not None
    ):
        return Response(status_code=410, headers=tus_headers())
    headers = tus_headers(**{
        "Upload-Offset": str(upload.offset),
        "Upload-Length": str(upload.length),
        "Upload-Metadata": upload.metadata_header,
        "Cache-Control": "no-store",
    })
    if upload.state == "receiving":
        headers["Upload-Expires"] = _http_date(upload.expires_at)
    return Response(status_code=200, headers=headers)


@router.patch("/{upload_id}", summary="Append bytes at Upload-Offset (role: device)")
async def patch_upload(
    upload_id: uuid.UUID, request: Request, device: DeviceDep, pool: PoolDep, store: StoreDep,
    settings: SettingsDep,
) -> Response:
    require_tus_version(request)
    if request.headers.get("content-type") != OFFSET_CONTENT_TYPE:
        raise Problem(415, "Wrong content type", f"PATCH needs Content-Type: {OFFSET_CONTENT_TYPE}",
                      headers=tus_headers())
    offset = _parse_int_header(request, "Upload-Offset")
    checksum = ChunkChecksum.parse(request.headers.get("upload-checksum"))
    await _load_own_upload(pool, upload_id, device)
    await _ensure_device_allowed(pool, device.sub)

    slots: asyncio.Semaphore = request.app.state.write_slots
    try:
        await asyncio.wait_for(slots.acquire(), settings.ingest_write_wait)
    except TimeoutError:
        raise Problem(503, "Ingest busy",
                      f"all {settings.ingest_max_concurrent_writes} write slots of this instance "
                      "are in use; retry after the time in Retry-After",
                      headers=tus_headers(**{"Retry-After": "5"})) from None
    try:
        return await _patch_with_slot(upload_id, offset, checksum, request, pool, store,
                                      settings)
    finally:
        slots.release()


async def _patch_with_slot(
    upload_id: uuid.UUID, offset: int, checksum: ChunkChecksum | None, request: Request,
    pool: PoolDep, store: StoreDep, settings: SettingsDep,
) -> Response:
    # One connection carries the upload's lock and all its database work for the whole
    # request: a request never waits for a second connection while holding one (no pool
    # deadlock under load), and if this process dies Postgres drops the lock with it.
    async with pool.acquire() as conn:
        if not await repo.try_lock(conn, upload_id):
            raise Problem(423, "Upload busy", "another request is writing to this upload",
                          headers=tus_headers())
        try:
            return await _patch_locked(conn, upload_id, offset, checksum, request, store,
                                       settings)
        finally:
            await repo.unlock(conn, upload_id)


async def _patch_locked(
    conn: Connection, upload_id: uuid.UUID, offset: int, checksum: ChunkChecksum | None,
    request: Request, store: StoreDep, settings: SettingsDep,
) -> Response:
    upload = await repo.get_upload(conn, upload_id)
    assert upload is not None
    if upload.state in ("rejected", "terminated"):
        raise _closed(upload)
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
        return await _complete(conn, store, upload, now)
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
        headers["Upload-Expires"] = _http_date(expires_at)
        return Response(status_code=204, headers=headers)

    finished = await repo.get_upload(conn, upload_id)
    assert finished is not None
    return await _complete(conn, store, finished, now)


async def _complete(conn: Connection, store: StoreDep, upload: Upload, now: datetime) -> Response:
    outcome = await complete_upload(conn, store, upload, now=now)
    if not outcome.completed:
        raise Problem(outcome.status, outcome.title, outcome.detail, headers=tus_headers(),
                      **({"field": outcome.field} if outcome.field else {}))
    return Response(status_code=204, headers=tus_headers(
        **{"Upload-Offset": str(upload.length)}))


@router.delete("/{upload_id}", status_code=204, summary="Terminate an upload (role: device)")
async def terminate_upload(
    upload_id: uuid.UUID, request: Request, device: DeviceDep, pool: PoolDep, store: StoreDep,
) -> Response:
    require_tus_version(request)
    upload = await _load_own_upload(pool, upload_id, device)
    await _ensure_device_allowed(pool, device.sub)
    if upload.state in ("completing", "completed"):
        raise Problem(409, "Upload complete",
                      "a completed recording is deleted only by the retention service (R2/R5)",
                      headers=tus_headers())
    async with pool.acquire() as conn:
        if not await repo.try_lock(conn, upload_id):
            raise Problem(423, "Upload busy", "another request is writing to this upload",
                          headers=tus_headers())
        try:
            current = await repo.get_upload(conn, upload_id)
            if current is not None and current.state == "receiving":
                await reject(conn, store, current, status=204, title="Terminated",
                             detail="terminated by the device", state="terminated")
        finally:
            await repo.unlock(conn, upload_id)
    return Response(status_code=204, headers=tus_headers())
