"""Smaller ingest rules: DELETE decided under the lock, the R2 deadline of a recording dated
slightly in the future, upload parts stored as rows, and where a PATCH's end goes."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
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
    wait_for_recording,
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
    # Each PATCH's end went into its last part (parts may exceed the part size): no segment.
    assert [(p["number"], p["size"]) for p in parts] == [(1, 6 * MIB), (2, 6 * MIB)]
    assert not await db.fetchval("SELECT count(*) FROM ingest.upload_segments"
                                 " WHERE upload_id = $1::uuid", recording_id_of(url))
    assert not await db.fetchval("SELECT count(*) FROM information_schema.columns WHERE"
                                 " table_schema = 'ingest' AND table_name = 'uploads'"
                                 " AND column_name = 'parts'")


async def test_patch_of_a_part_or_more_leaves_no_segment_unless_its_length_is_unknown(
    stack: Stack, http: httpx.AsyncClient, device: Device, db: asyncpg.Connection
) -> None:
    """A PATCH that announces its length and brings at least a part stores its end inside its
    last part (up to twice the part size), so no byte of it is written twice; a body in
    chunked transfer encoding (no Content-Length) leaves its end as a segment, as before.
    Either way the recording is every byte, in order (R6)."""
    data = os.urandom(23 * MIB + 7)
    url = await new_upload(http, stack, device, len(data))
    recording_id = recording_id_of(url)

    async def chunked(piece: bytes) -> AsyncIterator[bytes]:
        for start in range(0, len(piece), 256 * 1024):
            yield piece[start:start + 256 * 1024]

    bodies: list[tuple[int, int, bool]] = [(0, 8 * MIB, False), (8 * MIB, 14 * MIB, True),
                                           (14 * MIB, 23 * MIB + 7, False)]
    segments = []
    for start, end, stream in bodies:
        content = chunked(data[start:end]) if stream else data[start:end]
        response = await http.patch(url, content=content,
                                    headers=patch_headers(device.token, start))
        assert response.status_code == 204, response.text
        segments.append(await db.fetchval(
            "SELECT count(*) FROM ingest.upload_segments WHERE upload_id = $1::uuid",
            recording_id))
    # 8 MiB: one part of 8 MiB; 6 MiB chunked: a 5 MiB part and a 1 MiB segment; the last
    # PATCH completes (its parts and segments are gone with the upload's rows).
    assert segments[:2] == [0, 1]
    recording = await wait_for_recording(http, stack, recording_id)
    assert recording["sha256"] == hashlib.sha256(data).hexdigest()
    assert recording["size_bytes"] == len(data)
