"""Many devices at once (shift-end burst), one writer per upload, and upload expiry."""

from __future__ import annotations

import asyncio
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx

from bwc.devstack.stack import Stack
from tests.fixtures.clients import (
    MIB,
    Device,
    auth,
    create_upload,
    make_file,
    recording_id_of,
    recording_metadata,
    tus_uploader,
    wait_for_recording,
)

TUS = {"Tus-Resumable": "1.0.0"}


async def test_more_parallel_uploads_than_database_connections(
    stack: Stack, http: httpx.AsyncClient, device: Device, tmp_path: Path
) -> None:
    """Each PATCH holds one connection only, so a burst larger than the pool (10) completes."""
    files = [make_file(tmp_path, 6 * MIB + i, name=f"clip-{i}.mp4") for i in range(14)]
    uploaders = [tus_uploader(stack, device, path, chunk_size=6 * MIB + 100)
                 for path, _ in files]
    loop = asyncio.get_running_loop()
    # One thread per device: the default executor has too few threads for a real burst.
    with ThreadPoolExecutor(max_workers=len(uploaders)) as pool:
        await asyncio.wait_for(
            asyncio.gather(*(loop.run_in_executor(pool, u.upload) for u in uploaders)),
            timeout=120)
    recordings = await asyncio.gather(
        *(wait_for_recording(http, stack, recording_id_of(u.url)) for u in uploaders))
    assert [r["sha256"] for r in recordings] == [sha for _, sha in files]


async def test_second_writer_on_the_same_upload_gets_423(
    stack: Stack, http: httpx.AsyncClient, device: Device
) -> None:
    response = await create_upload(http, stack, device.token,
                                   recording_metadata(device.device_id), 8 * MIB)
    url = response.headers["Location"]
    headers = {**auth(device.token), **TUS, "Content-Type": "application/offset+octet-stream",
               "Upload-Offset": "0"}
    release = threading.Event()

    async def slow_body():  # type: ignore[no-untyped-def]
        yield os.urandom(MIB)
        await asyncio.to_thread(release.wait, 10)
        yield os.urandom(MIB)

    first = asyncio.create_task(http.patch(url, content=slow_body(), headers=headers))
    await asyncio.sleep(0.5)
    second = await http.patch(url, content=b"x", headers=headers)
    release.set()
    assert second.status_code == 423
    assert (await first).status_code == 204


async def test_idle_upload_expires_and_is_aborted(
    stack: Stack, http: httpx.AsyncClient, device: Device, db: asyncpg.Connection
) -> None:
    response = await create_upload(http, stack, device.token,
                                   recording_metadata(device.device_id), 10)
    assert "Upload-Expires" in response.headers
    url = response.headers["Location"]
    # Let the clock run out (the janitor runs every second in the test stack).
    await db.execute("UPDATE ingest.uploads SET expires_at = $2 WHERE id = $1::uuid",
                     recording_id_of(url), datetime.now(UTC) - timedelta(seconds=1))
    for _ in range(100):
        row = await db.fetchrow("SELECT state, reason FROM ingest.uploads WHERE id = $1::uuid",
                                recording_id_of(url))
        if row["state"] == "terminated":
            break
        await asyncio.sleep(0.1)
    assert row["state"] == "terminated"
    head = await http.head(url, headers={**auth(device.token), **TUS})
    assert head.status_code == 410
    assert "expired" in row["reason"]


async def test_patch_after_expiry_is_410_and_closes_the_upload(
    stack: Stack, http: httpx.AsyncClient, device: Device, db: asyncpg.Connection
) -> None:
    response = await create_upload(http, stack, device.token,
                                   recording_metadata(device.device_id), 10)
    url = response.headers["Location"]
    # Expired a moment ago, but the janitor (every second) may not have run yet: the PATCH
    # itself must refuse rather than extend the upload's life.
    await db.execute("UPDATE ingest.uploads SET expires_at = now() - interval '1 second'"
                     " WHERE id = $1::uuid", recording_id_of(url))
    response = await http.patch(url, content=b"0123456789", headers={
        **auth(device.token), **TUS, "Content-Type": "application/offset+octet-stream",
        "Upload-Offset": "0"})
    assert response.status_code == 410
    assert await db.fetchval("SELECT state FROM ingest.uploads WHERE id = $1::uuid",
                             recording_id_of(url)) == "terminated"
