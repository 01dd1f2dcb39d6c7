"""Interrupted uploads resume from the server's offset, also across an ingest restart."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import httpx

from bwc.devstack.stack import Stack
from tests.fixtures.clients import (
    MIB,
    Device,
    make_file,
    object_store,
    recording_id_of,
    tus_uploader,
    upload_offset,
    wait_for_recording,
)


async def _stop_halfway(stack: Stack, device: Device, path: Path, size: int) -> str:
    uploader = tus_uploader(stack, device, path, chunk_size=3 * MIB)
    await asyncio.to_thread(uploader.upload, stop_at=size // 2)
    return str(uploader.url)


async def _resume_with_new_client(stack: Stack, device: Device, path: Path, url: str) -> None:
    resumed = tus_uploader(stack, device, path, chunk_size=3 * MIB, url=url)
    assert 0 < resumed.offset < path.stat().st_size  # the new client learnt the offset by HEAD
    await asyncio.to_thread(resumed.upload)


async def test_interrupted_upload_resumes_from_server_offset(
    stack: Stack, http: httpx.AsyncClient, device: Device, tmp_path: Path
) -> None:
    size = 13 * MIB + 5
    path, sha256 = make_file(tmp_path, size)
    url = await _stop_halfway(stack, device, path, size)
    offset = await upload_offset(http, url, device)
    assert size // 2 <= offset < size

    await _resume_with_new_client(stack, device, path, url)

    recording = await wait_for_recording(http, stack, recording_id_of(url))
    assert recording["sha256"] == sha256
    assert recording["size_bytes"] == size


async def test_resume_after_ingest_restart(
    stack: Stack, http: httpx.AsyncClient, device: Device, tmp_path: Path
) -> None:
    size = 11 * MIB + 123
    path, sha256 = make_file(tmp_path, size)
    url = await _stop_halfway(stack, device, path, size)
    offset_before = await upload_offset(http, url, device)

    # Upload state lives in Postgres and S3, not in the process.
    stack.stop_service("ingest")
    stack.start_service("ingest")

    assert await upload_offset(http, url, device) == offset_before
    await _resume_with_new_client(stack, device, path, url)

    recording_id = recording_id_of(url)
    recording = await wait_for_recording(http, stack, recording_id)
    assert recording["sha256"] == sha256
    stored = hashlib.sha256()
    async for block in object_store(stack).iter_object(f"recordings/{recording_id}"):
        stored.update(block)
    assert stored.hexdigest() == sha256  # byte-identical after the restart
