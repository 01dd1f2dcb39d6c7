"""A recording travels from a standard tus client (tuspy) through S3 and Kafka to the catalogue."""

from __future__ import annotations

import asyncio
import hashlib
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest

from bwc.devstack.stack import Stack
from tests.fixtures.clients import (
    MIB,
    Device,
    make_file,
    new_upload,
    object_store,
    patch_headers,
    recording_id_of,
    tus_uploader,
    wait_for_recording,
)


@pytest.mark.parametrize("chunk_size", [5 * MIB, 1 * MIB], ids=["5MiB-chunks", "1MiB-chunks"])
async def test_tuspy_upload_reaches_catalogue(
    stack: Stack, http: httpx.AsyncClient, device: Device, tmp_path: Path, chunk_size: int
) -> None:
    path, sha256 = make_file(tmp_path, 20 * MIB)
    recorded = (datetime.now(UTC) - timedelta(hours=2)).replace(microsecond=0)
    uploader = tus_uploader(stack, device, path, chunk_size=chunk_size,
                            recorded_at=recorded.isoformat(), sha256=sha256, in_home="true")
    await asyncio.to_thread(uploader.upload)

    recording_id = recording_id_of(uploader.url)
    recording = await wait_for_recording(http, stack, recording_id)
    assert recording["size_bytes"] == 20 * MIB
    assert recording["sha256"] == sha256
    assert recording["device_id"] == device.device_id
    assert recording["officer_id"] == device.officer_id  # from the device registry
    assert recording["status"] == "pending_review"
    assert recording["in_home"] is True
    assert recording["holds"] == []
    # R2: the deadline runs from when the recording was made, not from the upload.
    assert datetime.fromisoformat(recording["delete_after"]) == recorded + timedelta(days=14)

    # R6: the hash is of the bytes actually stored.
    stored_sha, stored_size = await object_store(stack).sha256(f"recordings/{recording_id}")
    assert (stored_sha, stored_size) == (sha256, 20 * MIB)


async def test_upload_without_declared_hash_records_stored_hash(
    stack: Stack, http: httpx.AsyncClient, device: Device, tmp_path: Path
) -> None:
    path, sha256 = make_file(tmp_path, 3 * MIB + 17)
    uploader = tus_uploader(stack, device, path, chunk_size=2 * MIB)
    await asyncio.to_thread(uploader.upload)
    recording = await wait_for_recording(http, stack, recording_id_of(uploader.url))
    assert recording["sha256"] == sha256
    assert recording["size_bytes"] == 3 * MIB + 17


async def test_sub_part_bytes_wait_in_object_storage_not_postgres(
    stack: Stack, http: httpx.AsyncClient, device: Device, db: asyncpg.Connection
) -> None:
    """R5: video bytes never enter Postgres (its WAL and backups would outlive a delete). Bytes
    below a part wait in append-only segments, one per PATCH, each named by a row; none is
    left once the recording is stored."""
    data = os.urandom(3 * MIB)
    url = await new_upload(http, stack, device, len(data))
    recording_id = recording_id_of(url)
    for offset in (0, MIB):
        response = await http.patch(url, content=data[offset:offset + MIB],
                                    headers=patch_headers(device.token, offset))
        assert response.status_code == 204
    row = await db.fetchrow("SELECT * FROM ingest.uploads WHERE id = $1::uuid", recording_id)
    assert row["tail_size"] == 2 * MIB
    assert not any(isinstance(v, bytes) and len(v) >= MIB for v in row.values())
    segments = await db.fetch(
        "SELECT key, start_offset, end_offset, version_id FROM ingest.upload_segments"
        " WHERE upload_id = $1::uuid ORDER BY start_offset", recording_id)
    assert [(s["start_offset"], s["end_offset"]) for s in segments] == [(0, MIB), (MIB, 2 * MIB)]
    store = object_store(stack)
    for segment in segments:  # append-only: the first segment was not rewritten
        assert await store.read_bytes(segment["key"], MIB, segment["version_id"]) == \
            data[segment["start_offset"]:segment["end_offset"]]

    response = await http.patch(url, content=data[2 * MIB:],
                                headers=patch_headers(device.token, 2 * MIB))
    assert response.status_code == 204
    leftovers = list(store.client.list_objects("recordings", prefix=f"incomplete/{recording_id}/",
                                               include_version=True, recursive=True))
    assert leftovers == []  # every version of every segment is gone
    assert not await db.fetchval(
        "SELECT count(*) FROM ingest.upload_segments WHERE upload_id = $1::uuid", recording_id)
    recording = await wait_for_recording(http, stack, recording_id)
    assert recording["sha256"] == hashlib.sha256(data).hexdigest()


def _user_metadata(stat: object) -> dict[str, str]:
    headers = getattr(stat, "metadata", {}) or {}
    return {k.lower().removeprefix("x-amz-meta-"): v for k, v in headers.items()
            if k.lower().startswith("x-amz-meta-")}


async def test_every_object_ingest_writes_names_its_recording(
    stack: Stack, http: httpx.AsyncClient, device: Device, db: asyncpg.Connection
) -> None:
    """DESIGN §4: the recording and every segment carry ``recording-id`` and ``recorded-at``
    (RFC 3339), so the retention safety-net scan can judge an object no event announced.
    (Parts have no metadata of their own in S3: they become the recording.)"""
    data = os.urandom(6 * MIB)
    url = await new_upload(http, stack, device, len(data))
    recording_id = recording_id_of(url)
    assert (await http.patch(url, content=data[:MIB],
                             headers=patch_headers(device.token, 0))).status_code == 204
    segment = await db.fetchrow(
        "SELECT key, version_id FROM ingest.upload_segments WHERE upload_id = $1::uuid",
        recording_id)
    store = object_store(stack)
    on_segment = _user_metadata(await store.stat(segment["key"], segment["version_id"]))
    assert (await http.patch(url, content=data[MIB:],
                             headers=patch_headers(device.token, MIB))).status_code == 204
    recording = await wait_for_recording(http, stack, recording_id)
    on_recording = _user_metadata(await store.stat(f"recordings/{recording_id}"))
    for found in (on_segment, on_recording):
        assert found["recording-id"] == recording_id
        recorded_at = datetime.fromisoformat(found["recorded-at"].replace("Z", "+00:00"))
        assert recorded_at == datetime.fromisoformat(recording["recorded_at"])
        assert recorded_at.tzinfo is not None
