"""Device registry: ``/api/v1/devices``. Who may call: ``admin`` only.

Every change of the registry is audited (R7): ``device_registered`` / ``device_changed`` is
written in the transaction of the change (``bwc.audit``); if it cannot be, the change is not
made (503).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

import asyncpg
from fastapi import Path, Query
from pydantic import AfterValidator, BaseModel, Field

from bwc import audit
from bwc.audit import Actor
from bwc.auth import Role
from bwc.events import AuditAction, AuditService
from bwc.problems import Problem
from bwc.routing import api_router, problem_responses
from bwc.text import IDENTIFIER, Identifier, ShortText
from services.ingest import repository as repo
from services.ingest.deps import AdminDep, PoolDep

router = api_router(prefix="/api/v1/devices", tags=["devices"])

_DEVICE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def _device_id(value: str) -> str:
    if _DEVICE_ID.fullmatch(value) is None:
        raise ValueError("must be 1-64 letters, digits, '.', '_' or '-', starting with a letter "
                         "or digit")
    return IDENTIFIER.check(value)


#: A device's token subject. fullmatch: a pattern with ``$`` would let "cam-1\n" through.
DeviceId = Annotated[str, Field(min_length=1, max_length=64,
                                json_schema_extra={"pattern": "^[A-Za-z0-9][A-Za-z0-9._-]*$"}),
                     AfterValidator(_device_id)]


class DeviceIn(BaseModel):
    device_id: DeviceId = Field(description="the token subject of the device")
    model: ShortText | None = None
    officer_id: Identifier | None = None


class DevicePatch(BaseModel):
    model: ShortText | None = None
    officer_id: Identifier | None = None
    enabled: bool | None = None


class DeviceOut(BaseModel):
    device_id: str
    model: str | None
    officer_id: str | None
    enabled: bool
    registered_by: str
    registered_at: datetime
    updated_at: datetime


class DevicePage(BaseModel):
    items: list[DeviceOut]
    next_cursor: str | None


def _out(row: asyncpg.Record) -> DeviceOut:
    return DeviceOut(**dict(row))


#: The fields of a device an audit entry shows (a device has no secrets: its token is the
#: IdP's, keyed by ``device_id``).
AUDITED_FIELDS = ("model", "officer_id", "enabled")


def _subject(device_id: str) -> str:
    """The audit entry's key: one device's entries stay in order (``bwc.audit.audit_key``)."""
    return f"device:{device_id}"


@router.post("", status_code=201, summary="Register a device (role: admin)",
             responses=problem_responses(409))
async def register_device(body: DeviceIn, admin: AdminDep, pool: PoolDep) -> DeviceOut:
    async with audit.transaction(pool) as conn:
        row = await repo.insert_device(conn, device_id=body.device_id, model=body.model,
                                       officer_id=body.officer_id, registered_by=admin.sub)
        if row is None:
            raise Problem(409, "Device exists",
                          f"device {body.device_id!r} is already registered")
        await audit.record(
            conn, service=AuditService.INGEST, actor=Actor.of(admin, Role.ADMIN),
            action=AuditAction.DEVICE_REGISTERED, subject=_subject(body.device_id),
            details={"device_id": row["device_id"], **{f: row[f] for f in AUDITED_FIELDS}})
    return _out(row)


@router.get("", summary="List devices (role: admin)")
async def list_devices(
    _admin: AdminDep,
    pool: PoolDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[DeviceId | None,
                      Query(description="next_cursor of the previous page")] = None,
) -> DevicePage:
    async with pool.acquire() as conn:
        rows = await repo.list_devices(conn, after=cursor, limit=limit + 1)
    items = [_out(r) for r in rows[:limit]]
    return DevicePage(items=items, next_cursor=items[-1].device_id if len(rows) > limit else None)


DevicePath = Annotated[DeviceId, Path()]


@router.get("/{device_id}", summary="One device (role: admin)", responses=problem_responses(404))
async def get_device(device_id: DevicePath, _admin: AdminDep, pool: PoolDep) -> DeviceOut:
    async with pool.acquire() as conn:
        row = await repo.get_device(conn, device_id)
    if row is None:
        raise Problem(404, "Device not found", f"no device {device_id!r}")
    return _out(row)


@router.patch("/{device_id}", summary="Change or disable a device (role: admin)",
              responses=problem_responses(404))
async def update_device(
    device_id: DevicePath, body: DevicePatch, admin: AdminDep, pool: PoolDep
) -> DeviceOut:
    async with audit.transaction(pool) as conn:
        before = await repo.lock_device(conn, device_id)
        if before is None:
            raise Problem(404, "Device not found", f"no device {device_id!r}")
        row = await repo.update_device(conn, device_id,
                                       changes=body.model_dump(exclude_unset=True))
        assert row is not None  # locked above
        # Only what differs: a PATCH repeating the current values is recorded with none.
        changes = {f: {"old": before[f], "new": row[f]}
                   for f in AUDITED_FIELDS if before[f] != row[f]}
        await audit.record(
            conn, service=AuditService.INGEST, actor=Actor.of(admin, Role.ADMIN),
            action=AuditAction.DEVICE_CHANGED, subject=_subject(device_id),
            details={"device_id": device_id, "changes": changes})
    return _out(row)
