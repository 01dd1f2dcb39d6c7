"""Nothing stays in S3 that nothing deletes (R5): a crash between creating the multipart upload
and recording it, and an S3 failure between the completing commit and removing the tails."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re

import asyncpg
import httpx

from bwc.devstack.stack import Stack
from tests.fixtures.clients import (
    MIB,
    Device,
    auth,
    encode_metadata,
    new_upload,
    object_store,
    patch_headers,
    recording_id_of,
    recording_metadata,
    wait_for_recording,
)
from tests.fixtures.extra_ingest import extra_ingest
from tests.fixtures.gate import s3_gate

CREATE_MULTIPART = re.compile(rb"^POST [^ ]*\?uploads")
#: Segments are removed by key and version in one DeleteObjects request (no listing).
DELETE_OBJECTS = re.compile(rb"^POST /recordings/?\?delete")


def multipart_uploads(stack: Stack) -> set[tuple[str, str]]:
    store = object_store(stack)
    result = store.client._list_multipart_uploads(store.bucket, prefix="recordings/")
    return {(u.object_name, u.upload_id) for u in result.uploads}


async def test_janitor_removes_multipart_left_by_crash_before_row(
    stack: Stack, http: httpx.AsyncClient, device: Device
) -> None:
    before = await asyncio.to_thread(multipart_uploads, stack)
    with s3_gate(stack.env["BWC_S3_ENDPOINT"]) as gate:
        # S3 creates the multipart upload, but its answer never reaches ingest ...
        gate.mute = CREATE_MULTIPART
        async with extra_ingest(stack, BWC_S3_ENDPOINT=gate.url) as (base, child):
            post = asyncio.create_task(http.post(f"{base}/files/", headers={
                **auth(device.token), "Tus-Resumable": "1.0.0", "Upload-Length": "1000",
                "Upload-Metadata": encode_metadata(recording_metadata(device.device_id))}))
            for _ in range(100):
                new = await asyncio.to_thread(multipart_uploads, stack) - before
                if new:
                    break
                await asyncio.sleep(0.1)
            assert new, "the multipart upload was not created"
            # ... which dies right then (SIGKILL: no clean-up runs).
            child.process.kill()
            await asyncio.to_thread(child.process.wait)
            with contextlib.suppress(httpx.HTTPError):
                await post
    # A janitor (here of a fresh process with a short recovery grace) finds and aborts it.
    async with extra_ingest(stack, BWC_INGEST_JANITOR_INTERVAL="1",
                            BWC_INGEST_RECOVERY_GRACE="1"):
        for _ in range(150):
            left = new & await asyncio.to_thread(multipart_uploads, stack)
            if not left:
                break
            await asyncio.sleep(0.2)
        assert not left, f"multipart uploads nobody will delete: {left}"


async def test_tail_removal_failure_after_commit_is_finished_by_janitor(
    stack: Stack, http: httpx.AsyncClient, device: Device, db: asyncpg.Connection
) -> None:
    data = os.urandom(MIB + 100)
    store = object_store(stack)
    with s3_gate(stack.env["BWC_S3_ENDPOINT"]) as gate:
        async with extra_ingest(stack, BWC_S3_ENDPOINT=gate.url) as (base, _):
            url = await new_upload(http, stack, device, len(data), base_url=base)
            recording_id = recording_id_of(url)
            half = len(data) // 2
            first = await http.patch(url, content=data[:half],
                                     headers=patch_headers(device.token, 0))
            assert first.status_code == 204  # a tail object now waits under incomplete/<id>/
            gate.fail = DELETE_OBJECTS  # removing the segments after the commit fails
            last = await http.patch(url, content=data[half:],
                                    headers=patch_headers(device.token, half))
            # The recording is committed: the device is told so, whatever the tails do.
            assert last.status_code == 204, last.text
            assert last.headers["Upload-Offset"] == str(len(data))
    await wait_for_recording(http, stack, recording_id)
    # The shared stack's janitor (direct S3 access) finishes the removal the row asks for.
    for _ in range(100):
        pending = await db.fetchval(
            "SELECT cleanup_pending FROM ingest.uploads WHERE id = $1::uuid", recording_id)
        if not pending:
            break
        await asyncio.sleep(0.2)
    assert not pending
    assert not list(store.client.list_objects(store.bucket, prefix=f"incomplete/{recording_id}/",
                                              include_version=True, recursive=True))
