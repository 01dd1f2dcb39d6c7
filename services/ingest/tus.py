"""tus 1.0 routes at ``/files/``: core + creation + checksum + termination + expiration.

Who may call: ``device`` only, and a device only for its own uploads (DESIGN §4). ``OPTIONS``
is open, as tus clients probe it before authenticating. Wire details are in ``protocol``, the
write path in ``writes``; this module maps requests onto them.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg
from fastapi import Request, Response

from bwc.auth import Principal
from bwc.deadline import deletion_deadline
from bwc.problems import Problem
from bwc.routing import api_router, problem_responses
from services.ingest import repository as repo
from services.ingest.chunks import CHECKSUM_ALGORITHMS, ChunkChecksum
from services.ingest.completion import expiry_from, expiry_reason, reject
from services.ingest.creation import create_multipart_upload
from services.ingest.deps import DeviceDep, PoolDep, SettingsDep, StoreDep
from services.ingest.metadata import encode_header, parse_header, validate
from services.ingest.protocol import (
    EXTENSIONS,
    OFFSET_CONTENT_TYPE,
    TUS_VERSION,
    http_date,
    parse_int_header,
    require_tus_version,
    tus_headers,
    tus_openapi,
)
from services.ingest.repository import Upload
from services.ingest.states import UploadState
from services.ingest.writes import append, closed, device_write, locked_upload, write_slot

router = api_router(prefix="/files", tags=["tus"])


async def _load_own_upload(pool: PoolDep, upload_id: uuid.UUID, device: Principal) -> Upload:
    async with pool.acquire() as conn:
        upload = await repo.get_upload(conn, upload_id)
    if upload is None or upload.device_id != device.sub:
        raise _not_found(upload_id)
    return upload


def _not_found(upload_id: uuid.UUID) -> Problem:
    # Another device's upload is reported as absent: ids are not to be probed.
    return Problem(404, "Upload not found", f"no upload {upload_id}", headers=tus_headers())


def _refuse_device(device_id: str, *, registered: bool, enabled: bool) -> None:
    """403 unless the device is registered and enabled."""
    if not registered:
        raise Problem(403, "Device not registered",
                      f"device {device_id!r} is not registered; an admin registers it with "
                      "POST /api/v1/devices", headers=tus_headers())
    if not enabled:
        raise Problem(403, "Device disabled", f"device {device_id!r} is disabled",
                      headers=tus_headers())


async def _ensure_device_allowed(pool: PoolDep, device_id: str) -> asyncpg.Record:
    """The device's registry row, if it is registered and enabled; 403 otherwise."""
    async with pool.acquire() as conn:
        device = await repo.get_device(conn, device_id)
    _refuse_device(device_id, registered=device is not None,
                   enabled=device is not None and device["enabled"])
    assert device is not None
    return device


async def _ensure_own_upload_and_device(pool: PoolDep, upload_id: uuid.UUID,
                                        device: Principal) -> None:
    """404 unless the upload is the device's own, then 403 unless the device is registered
    and enabled: one round trip before a writer takes a slot and the lock (which then reads
    the upload again, R6: the offset is only trusted under the lock)."""
    async with pool.acquire() as conn:
        access = await repo.access_of(conn, upload_id, device.sub)
    if access["upload_device"] != device.sub:
        raise _not_found(upload_id)
    _refuse_device(device.sub, registered=access["registered"], enabled=access["enabled"])


@router.options("/", status_code=204, summary="tus discovery (no auth)")
@router.options("/{upload_id}", status_code=204, include_in_schema=False)
async def options(settings: SettingsDep) -> Response:
    return Response(status_code=204, headers=tus_headers(
        **{"Tus-Version": TUS_VERSION, "Tus-Extension": EXTENSIONS,
           "Tus-Max-Size": str(settings.ingest_max_upload_size),
           "Tus-Checksum-Algorithm": ",".join(CHECKSUM_ALGORITHMS)}))


@router.post("/", status_code=201, summary="Create an upload (role: device)",
             responses={201: {"description": "Created; Location names the upload",
                              "headers": {"Location": {"schema": {"type": "string"}}}},
                        **problem_responses(400, 412, 413, 422, 507)},
             openapi_extra=tus_openapi("Tus-Resumable", "Upload-Length", "Upload-Metadata",
                                       "Upload-Defer-Length"))
async def create_upload(
    request: Request, device: DeviceDep, pool: PoolDep, store: StoreDep, settings: SettingsDep
) -> Response:
    require_tus_version(request)
    if request.headers.get("upload-defer-length"):
        raise Problem(400, "Deferred length not supported",
                      "send Upload-Length; creation-defer-length is not offered",
                      headers=tus_headers())
    length = parse_int_header(request, "Upload-Length", maximum=settings.ingest_max_upload_size)
    if length == 0:
        raise Problem(400, "Empty upload", "Upload-Length must be greater than 0",
                      headers=tus_headers())
    values = parse_header(request.headers.get("upload-metadata"))
    header = encode_header(values)  # unknown keys are not stored
    now = datetime.now(UTC)
    meta = validate(values, now=now, retention_period=settings.retention_period,
                    clock_skew=settings.clock_skew)
    if meta.device_id != device.sub:
        raise Problem(403, "Wrong device",
                      f"Upload-Metadata 'device_id' is {meta.device_id!r} but the token is for "
                      f"device {device.sub!r}; a device uploads only as itself",
                      headers=tus_headers())
    registered = await _ensure_device_allowed(pool, device.sub)
    if meta.officer_id is None:
        meta.officer_id = registered["officer_id"]

    upload_id = uuid.uuid4()
    object_key = f"recordings/{upload_id}"
    delete_after = deletion_deadline(meta.recorded_at, retention_period=settings.retention_period,
                                     now=now)
    expires_at = expiry_from(now, settings.ingest_upload_expiry, delete_after)
    stored_meta = meta.model_dump(mode="json") | {"delete_after": delete_after.isoformat()}
    await create_multipart_upload(pool, store, upload_id=upload_id, device_id=device.sub,
                                  length=length, metadata_header=header, metadata=stored_meta,
                                  object_key=object_key, content_type=meta.content_type,
                                  recorded_at=stored_meta["recorded_at"], expires_at=expires_at)
    location = str(request.url_for("head_upload", upload_id=upload_id))
    return Response(status_code=201, headers=tus_headers(
        Location=location, **{"Upload-Expires": http_date(expires_at)}))


@router.head("/{upload_id}", name="head_upload", summary="Upload offset (role: device)",
             responses=problem_responses(404, 410, 412), openapi_extra=tus_openapi("Tus-Resumable"))
async def head_upload(
    upload_id: uuid.UUID, request: Request, device: DeviceDep, pool: PoolDep
) -> Response:
    require_tus_version(request)
    # The device first: an unregistered device learns 403, not whether an upload exists.
    await _ensure_device_allowed(pool, device.sub)
    upload = await _load_own_upload(pool, upload_id, device)
    if upload.state.closed:
        raise closed(upload)
    if upload.state == UploadState.RECEIVING and (
        reason := expiry_reason(upload, datetime.now(UTC))
    ) is not None:
        raise closed(upload, reason)
    # While ``completing`` this is the offset before the last PATCH, not the length: the device
    # sees the full offset only once the recording is stored, hashed and announced (R6).
    headers = tus_headers(**{
        "Upload-Offset": str(upload.offset),
        "Upload-Length": str(upload.length),
        "Upload-Metadata": upload.metadata_header,
        "Cache-Control": "no-store",
    })
    if upload.state == UploadState.RECEIVING:
        headers["Upload-Expires"] = http_date(upload.expires_at)
    return Response(status_code=200, headers=headers)


@router.patch("/{upload_id}", summary="Append bytes at Upload-Offset (role: device)",
              status_code=204,
              responses=problem_responses(404, 409, 410, 412, 413, 415, 422, 423, 429, 460,
                                          507),
              openapi_extra=tus_openapi("Tus-Resumable", "Upload-Offset", "Upload-Checksum",
                                        body=True))
async def patch_upload(
    upload_id: uuid.UUID, request: Request, device: DeviceDep, pool: PoolDep, store: StoreDep,
    settings: SettingsDep,
) -> Response:
    require_tus_version(request)
    if request.headers.get("content-type") != OFFSET_CONTENT_TYPE:
        raise Problem(415, "Wrong content type", f"PATCH needs Content-Type: {OFFSET_CONTENT_TYPE}",
                      headers=tus_headers())
    offset = parse_int_header(request, "Upload-Offset")
    checksum = ChunkChecksum.parse(request.headers.get("upload-checksum"))
    await _ensure_own_upload_and_device(pool, upload_id, device)

    async with device_write(request, settings, device.sub), write_slot(request, settings), \
            locked_upload(pool, upload_id) as conn:
        return await append(conn, upload_id, offset, checksum, request, store, settings)


@router.delete("/{upload_id}", status_code=204, summary="Terminate an upload (role: device)",
               responses=problem_responses(404, 409, 410, 412, 423),
               openapi_extra=tus_openapi("Tus-Resumable"))
async def terminate_upload(
    upload_id: uuid.UUID, request: Request, device: DeviceDep, pool: PoolDep, store: StoreDep,
) -> Response:
    require_tus_version(request)
    await _ensure_own_upload_and_device(pool, upload_id, device)
    # Decided under the lock: the upload may have moved to ``completing`` since it was read.
    async with locked_upload(pool, upload_id) as conn:
        current = await repo.get_upload(conn, upload_id)
        assert current is not None
        if current.state in (UploadState.COMPLETING, UploadState.COMPLETED):
            raise Problem(409, "Upload complete",
                          f"the upload is {current.state}: a recording is deleted only by the "
                          "retention service (R2/R5)", headers=tus_headers())
        if current.state == UploadState.REJECTED:
            raise closed(current)
        if current.state != UploadState.TERMINATED:  # a repeated DELETE is answered alike
            await reject(conn, store, current, status=204, title="Terminated",
                         detail="terminated by the device", state=UploadState.TERMINATED)
    return Response(status_code=204, headers=tus_headers())
