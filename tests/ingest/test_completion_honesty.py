"""A device is told "done" only once the recording is stored, hashed and announced (R6), and
the R2 deadline is checked when the upload completes, not when its last PATCH started (R2).

The S3 failures are real: an extra ingest process talks to the S3 endpoint through a gate
that cuts the connection of the S3 call under test."""

from __future__ import annotations

import asyncio
import json
import os
import re
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
    make_file,
    new_upload,
    object_store,
    patch_headers,
    raw_patch,
    recording_id_of,
    tus_uploader,
    upload_offset,
    wait_for_recording,
)
from tests.fixtures.extra_ingest import extra_ingest
from tests.fixtures.gate import s3_gate

#: CompleteMultipartUpload (``CreateMultipartUpload`` is ``?uploads``, not ``?uploadId``).
COMPLETE_MULTIPART = re.compile(rb"^POST [^ ]*\?uploadId=")


def recorded_at_with_deadline_in(seconds: float) -> str:
    """A ``recorded_at`` whose R2 deadline (14 days, the stack's period) is ``seconds`` away."""
    return (datetime.now(UTC) - timedelta(days=14) + timedelta(seconds=seconds)).isoformat()


async def test_head_never_reports_full_offset_before_completion(
    stack: Stack, http: httpx.AsyncClient, device: Device, tmp_path: Path
) -> None:
    path, sha = make_file(tmp_path, 3 * MIB)
    data = path.read_bytes()
    with s3_gate(stack.env["BWC_S3_ENDPOINT"]) as gate:
        async with extra_ingest(stack, BWC_S3_ENDPOINT=gate.url) as (base, _):
            url = await new_upload(http, stack, device, len(data), base_url=base)
            gate.fail = COMPLETE_MULTIPART  # every byte is stored, the completion fails
            response = await http.patch(url, content=data, headers=patch_headers(device.token, 0))
            # Not verified, so not done: a resuming client must send the last bytes again
            # (asked on a new connection, as a client that lost its answer would).
            async with httpx.AsyncClient(timeout=30) as fresh:
                assert await upload_offset(fresh, url, device) == 0
            assert response.status_code == 503, response.text
            assert response.headers["Retry-After"]

            gate.fail = None
            # A standard tus client resumes: HEAD, then the repeated last PATCH (same offset,
            # same bytes), which finishes the completion and only then answers the full offset.
            uploader = await asyncio.to_thread(tus_uploader, stack, device, path,
                                               chunk_size=8 * MIB, url=url, base_url=base)
            assert uploader.offset == 0
            await asyncio.to_thread(uploader.upload)
            assert uploader.offset == len(data)
            assert await upload_offset(http, url, device) == len(data)
    recording = await wait_for_recording(http, stack, recording_id_of(url))
    assert recording["sha256"] == sha


async def test_rejected_completion_is_410_with_reason_on_head_and_patch(
    stack: Stack, http: httpx.AsyncClient, device: Device
) -> None:
    data = os.urandom(1000)
    url = await new_upload(http, stack, device, len(data), sha256="0" * 64)
    response = await http.patch(url, content=data, headers=patch_headers(device.token, 0))
    assert response.status_code == 422
    # The device asks again (a retry, a resume after losing the answer): it learns why.
    head = await http.head(url, headers={**auth(device.token), **TUS})
    assert head.status_code == 410
    assert "Checksum mismatch" in head.headers["Bwc-Upload-Reason"]
    again = await http.patch(url, content=data, headers=patch_headers(device.token, 0))
    assert again.status_code == 410
    assert "Checksum mismatch" in again.json()["reason"]


async def test_deadline_checked_at_completion_time(
    stack: Stack, http: httpx.AsyncClient, device: Device, db: asyncpg.Connection
) -> None:
    """R2: a PATCH that starts before the deadline and ends after it is refused."""
    url = await new_upload(http, stack, device, 12, recorded_at=recorded_at_with_deadline_in(3))
    # One byte, then a byte every 0.5 s: the body ends about 5.5 s later, past the deadline.
    answer = await asyncio.to_thread(raw_patch, url, device.token, send=1, announce=12, hold=15)
    assert answer.startswith(b"HTTP/1.1 422"), answer[:300]
    assert b"Retention deadline passed" in answer
    row = await db.fetchrow("SELECT state, cleanup_pending FROM ingest.uploads WHERE id = $1::uuid",
                            recording_id_of(url))
    # The body is ended at the deadline itself (R2), before its last byte: never completing.
    assert row["state"] == "terminated"
    assert not await object_store(stack).stat(f"recordings/{recording_id_of(url)}")


async def test_uploaded_at_is_when_the_last_byte_was_stored(
    stack: Stack, http: httpx.AsyncClient, device: Device, db: asyncpg.Connection
) -> None:
    url = await new_upload(http, stack, device, 8)
    started = datetime.now(UTC)
    answer = await asyncio.to_thread(raw_patch, url, device.token, send=1, announce=8, hold=15)
    assert answer.startswith(b"HTTP/1.1 204"), answer[:300]
    payload = await db.fetchval("SELECT payload::text FROM ingest.outbox WHERE key = $1",
                                recording_id_of(url))
    uploaded_at = datetime.fromisoformat(json.loads(payload)["data"]["uploaded_at"])
    # Seven trickled bytes, 0.5 s apart: the upload completed ~3.5 s after the PATCH began.
    assert uploaded_at >= started + timedelta(seconds=3)


async def test_upload_past_deadline_is_removed_even_if_completion_keeps_failing(
    stack: Stack, http: httpx.AsyncClient, device: Device, db: asyncpg.Connection
) -> None:
    data = os.urandom(2 * MIB)
    store = object_store(stack)
    with s3_gate(stack.env["BWC_S3_ENDPOINT"]) as gate:
        async with extra_ingest(stack, BWC_S3_ENDPOINT=gate.url, BWC_INGEST_JANITOR_INTERVAL="1",
                                BWC_INGEST_RECOVERY_GRACE="1") as (base, _):
            url = await new_upload(http, stack, device, len(data), base_url=base,
                                   recorded_at=recorded_at_with_deadline_in(12))
            recording_id = recording_id_of(url)
            gate.fail = COMPLETE_MULTIPART  # the completion fails, every time
            response = await http.patch(url, content=data, headers=patch_headers(device.token, 0))
            assert response.status_code != 204, response.text

            # The janitor retries and fails; the stuck completion shows as a metric.
            for _ in range(80):
                async with httpx.AsyncClient(timeout=30) as fresh:  # no stale keep-alive
                    metrics = (await fresh.get(f"{base}/metrics")).text
                stuck = re.search(r"^bwc_ingest_completions_stuck (\S+)$", metrics, re.M)
                failures = re.search(
                    r'^bwc_ingest_completion_failures_total\{by="janitor"\} (\S+)$', metrics, re.M)
                if stuck and float(stuck[1]) >= 1 and failures and float(failures[1]) >= 1:
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(f"no stuck completion in the metrics:\n{metrics[-2000:]}")

            # Past the deadline the upload is aborted and every byte removed (R2, R5).
            for _ in range(300):
                state = await db.fetchval("SELECT state FROM ingest.uploads WHERE id = $1::uuid",
                                          recording_id)
                if state == "rejected":
                    break
                await asyncio.sleep(0.1)
            assert state == "rejected"
            head = await http.head(url, headers={**auth(device.token), **TUS})
            assert head.status_code == 410
            assert "Retention deadline passed" in head.headers["Bwc-Upload-Reason"]
    client = store.client
    leftovers = client._list_multipart_uploads(store.bucket, prefix=f"recordings/{recording_id}")
    assert not leftovers.uploads
    assert not list(client.list_objects(store.bucket, prefix=f"recordings/{recording_id}",
                                        include_version=True))
    assert not list(client.list_objects(store.bucket, prefix=f"incomplete/{recording_id}/",
                                        include_version=True, recursive=True))
