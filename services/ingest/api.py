"""Device registry: ``/api/v1/devices``. Who may call: ``admin`` only."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import asyncpg
from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from bwc.problems import Problem
from services.ingest import repository as repo
from services.ingest.deps import AdminDep, PoolDep

router = APIRouter(prefix="/api/v1/devices", tags=["devices"])

DEVICE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class DeviceIn(BaseModel):
    device_id: str = Field(pattern=DEVICE_ID_PATTERN, description="the token subject of the device")
    model: str | None = Field(default=None, max_length=200)
    officer_id: str | None = Field(default=None, max_length=200)


class DevicePatch(BaseModel):
    model: str | None = Field(default=None, max_length=200)
    officer_id: str | None = Field(default=None, max_length=200)
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


@router.post("", status_code=201, summary="Register a device (role: admin)")
async def register_device(body: DeviceIn, admin: AdminDep, pool: PoolDep) -> DeviceOut:
    async with pool.acquire() as conn:
        row = await repo.insert_device(conn, device_id=body.device_id, model=body.model,
                                       officer_id=body.officer_id, registered_by=admin.sub)
    if row is None:
        raise Problem(409, "Device exists", f"device {body.device_id!r} is already registered")
    return _out(row)


@router.get("", summary="List devices (role: admin)")
async def list_devices(
    _admin: AdminDep,
    pool: PoolDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> DevicePage:
    async with pool.acquire() as conn:
        rows = await repo.list_devices(conn, after=cursor, limit=limit + 1)
    items = [_out(r) for r in rows[:limit]]
    return DevicePage(items=items, next_cursor=items[-1].device_id if len(rows) > limit else None)


@router.get("/{device_id}", summary="One device (role: admin)")
async def get_device(device_id: str, _admin: AdminDep, pool: PoolDep) -> DeviceOut:
    async with pool.acquire() as conn:
        row = await repo.get_device(conn, device_id)
    if row is None:
        raise Problem(404, "Device not found", f"no device {device_id!r}")
    return _out(row)


@router.patch("/{device_id}", summary="Change or disable a device (role: admin)")
async def update_device(
    device_id: str, body: DevicePatch, _admin: AdminDep, pool: PoolDep
) -> DeviceOut:
    async with pool.acquire() as conn:
        row = await repo.update_device(conn, device_id, changes=body.model_dump(exclude_unset=True))
    if row is None:
        raise Problem(404, "Device not found", f"no device {device_id!r}")
    return _out(row)
