"""Smaller ingest rules: DELETE decided under the lock, the R2 deadline of a recording dated
slightly in the future, and upload parts stored as rows."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx

from bwc.devstack.stack import Stack
from tests.fixtures.clients import (
    MIB,
    TUS,
    Device,
    auth,
    new_upload,
    patch_headers,
    recording_id_of,
)


async def test_delete_of_upload_that_moved_to_completing_is_409(
    stack: Stack, http: httpx.AsyncClient, device: Device, db: asyncpg.Connection
) -> None:
    url = await new_upload(http, stack, device, 10)
    recording_id = recording_id_of(url)
    # Hold the DELETE between reading the upload and acting on it (it reads the device
    # registry in between), and let the upload move to completing meanwhile.
    async with db.transaction():
        await db.execute("LOCK TABLE ingest.devices IN ACCESS EXCLUSIVE MODE")
        delete = asyncio.create_task(http.delete(url, headers={**auth(device.token), **TUS}))
        await asyncio.sleep(1)
        await db.execute("UPDATE ingest.uploads SET state = 'completing' WHERE id = $1::uuid",
                         recording_id)
    response = await delete
    assert response.status_code == 409, response.text  # not "terminated": it is being kept
    await db.execute("UPDATE ingest.uploads SET state = 'receiving' WHERE id = $1::uuid",
                     recording_id)
    assert (await http.delete(url, headers={**auth(device.token), **TUS})).status_code == 204


async def test_future_recorded_at_does_not_push_deadline_past_14_days(
    stack: Stack, http: httpx.AsyncClient, device: Device, db: asyncpg.Connection
) -> None:
    """R2: a device clock 4 minutes fast (within the skew allowance) gains no time."""
    before = datetime.now(UTC)
    url = await new_upload(http, stack, device, 10,
                           recorded_at=(before + timedelta(minutes=4)).isoformat())
    delete_after = datetime.fromisoformat(await db.fetchval(
        "SELECT metadata->>'delete_after' FROM ingest.uploads WHERE id = $1::uuid",
        recording_id_of(url)))
    assert delete_after <= datetime.now(UTC) + timedelta(days=14)


async def test_parts_are_rows_one_insert_per_part(
    stack: Stack, http: httpx.AsyncClient, device: Device, db: asyncpg.Connection
) -> None:
    url = await new_upload(http, stack, device, 20 * MIB)
    offset = 0
    for _ in range(2):
        chunk = os.urandom(6 * MIB)
        response = await http.patch(url, content=chunk, headers=patch_headers(device.token,
                                                                              offset))
        assert response.status_code == 204
        offset += len(chunk)
    parts = await db.fetch("SELECT number, size FROM ingest.upload_parts"
                           " WHERE upload_id = $1::uuid ORDER BY number", recording_id_of(url))
    assert [(p["number"], p["size"]) for p in parts] == [(1, 5 * MIB), (2, 5 * MIB)]
    assert not await db.fetchval("SELECT count(*) FROM information_schema.columns WHERE"
                                 " table_schema = 'ingest' AND table_name = 'uploads'"
                                 " AND column_name = 'parts'")
