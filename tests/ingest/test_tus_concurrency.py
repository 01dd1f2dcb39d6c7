"""Many devices at once (shift-end burst), one writer per upload, and upload expiry."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx

from bwc.devstack.stack import Stack
from tests.fixtures.clients import (
    MIB,
    TUS,
    Device,
    auth,
    create_upload,
    make_file,
    new_upload,
    patch_headers,
    raw_patch,
    recording_id_of,
    recording_metadata,
    register_device,
    tus_uploader,
    upload_offset,
    wait_for_recording,
)


async def test_more_parallel_uploads_than_database_connections(
    stack: Stack, http: httpx.AsyncClient, device: Device, tmp_path: Path
) -> None:
    """A burst larger than the pool (10) and the write slots (4 here) completes: PATCHes queue
    for a slot, and one that waits too long gets 503 + Retry-After, which clients retry."""
    files = [make_file(tmp_path, 6 * MIB + i, name=f"clip-{i}.mp4") for i in range(14)]
    # Fourteen docks at shift end: one device each (a device may write twice at once).
    devices = [device] + [await register_device(stack, http) for _ in range(13)]
    uploaders = [tus_uploader(stack, d, path, chunk_size=6 * MIB + 100, retries=10)
                 for (path, _), d in zip(files, devices, strict=True)]
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
    url = await new_upload(http, stack, device, 8 * MIB)
    headers = patch_headers(device.token, 0)
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
    url = await new_upload(http, stack, device, 10)
    # Expired a moment ago, but the janitor (every second) may not have run yet: the PATCH
    # itself must refuse rather than extend the upload's life.
    await db.execute("UPDATE ingest.uploads SET expires_at = now() - interval '1 second'"
                     " WHERE id = $1::uuid", recording_id_of(url))
    response = await http.patch(url, content=b"0123456789",
                                headers=patch_headers(device.token, 0))
    assert response.status_code == 410
    assert await db.fetchval("SELECT state FROM ingest.uploads WHERE id = $1::uuid",
                             recording_id_of(url)) == "terminated"


async def test_stalled_sender_is_cut_off_and_its_bytes_kept(
    stack: Stack, http: httpx.AsyncClient, device: Device
) -> None:
    url = await new_upload(http, stack, device, 8 * MIB)
    # Sends 1 MiB, then nothing while keeping the connection open for 8 s: after the idle
    # timeout (2 s here) the server ends the request, keeps the 1 MiB and says to resume.
    started = time.monotonic()
    answer = await asyncio.to_thread(raw_patch, url, device.token, send=MIB, hold=8,
                                     trickle=False)
    assert time.monotonic() - started < 7  # the server ended it, not the sender
    assert answer.startswith(b"HTTP/1.1 503"), answer[:200]
    assert b"retry-after: 5" in answer.lower()
    assert b"Body stalled" in answer
    assert await upload_offset(http, url, device) == MIB


async def test_full_write_slots_answer_503_with_retry_after(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    # One device may write only twice at once: five devices, one upload each.
    devices = [await register_device(stack, http) for _ in range(5)]
    urls = [await new_upload(http, stack, d, 8 * MIB) for d in devices]
    # Four senders trickle a byte every 0.5 s for 5 s: busy, never idle, holding all 4 slots.
    holders = [asyncio.create_task(asyncio.to_thread(
        raw_patch, u, d.token, send=1000, hold=5)) for u, d in zip(urls, devices, strict=False)
        if d is not devices[4]]
    await asyncio.sleep(0.5)
    response = await http.patch(urls[4], content=b"x",
                                headers=patch_headers(devices[4].token, 0))
    await asyncio.gather(*holders)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert "write slots" in response.json()["detail"]
