"""Nothing is lost when ingest dies while completing an upload: the device repeats its last
PATCH and gets the real outcome, the recording reaches the catalogue with the right hash."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os

import asyncpg
import httpx

from bwc.devstack.stack import Stack
from tests.fixtures.clients import (
    MIB,
    Device,
    new_upload,
    patch_headers,
    recording_id_of,
    upload_offset,
    wait_for_recording,
)


async def test_crash_during_completion_is_recovered_by_the_repeated_patch(
    stack: Stack, http: httpx.AsyncClient, device: Device, db: asyncpg.Connection
) -> None:
    data = os.urandom(60 * MIB)  # big enough that the read-back for the hash takes a while
    url = await new_upload(http, stack, device, len(data))
    recording_id = recording_id_of(url)

    async def send_everything() -> None:
        with contextlib.suppress(httpx.HTTPError):  # the server dies under it
            await http.patch(url, content=data, headers=patch_headers(device.token, 0))

    sender = asyncio.create_task(send_everything())
    state = None
    for _ in range(1000):
        state = await db.fetchval("SELECT state FROM ingest.uploads WHERE id = $1::uuid",
                                  recording_id)
        if state != "receiving":
            break
        await asyncio.sleep(0.01)
    assert state == "completing"  # all bytes are in, the completion is running: kill now
    ingest = stack.services.pop("ingest")
    ingest.process.kill()
    ingest.process.wait()
    stack.group.children.remove(ingest)
    await sender
    assert await db.fetchval("SELECT state FROM ingest.uploads WHERE id = $1::uuid",
                             recording_id) == "completing"

    stack.start_service("ingest")
    # Not verified yet, so not "done": the offset is where the unanswered PATCH started (R6).
    assert await upload_offset(http, url, device) == 0
    # What a tus client does when its last PATCH got no answer: HEAD, then repeat it.
    response = await http.patch(url, content=data, headers=patch_headers(device.token, 0))
    assert response.status_code == 204, response.text
    assert response.headers["Upload-Offset"] == str(len(data))

    recording = await wait_for_recording(http, stack, recording_id)
    assert recording["sha256"] == hashlib.sha256(data).hexdigest()
    assert recording["size_bytes"] == len(data)
