"""The two ways the benchmark stores the same bytes, and how it removes them again.

- ``through_ingest``: a streaming tus client (httpx): creation, then PATCHes of ``chunk``
  bytes, each body streamed from a generated recording, so neither side of the benchmark
  holds a whole file in memory. The recording's SHA-256 goes in ``Upload-Metadata`` as a
  device's would (ingest compares it, R6).
- ``direct``: the ``minio`` client's ``put_object`` with the same 5 MiB parts ingest uses:
  what the storage allows.

Both are removed by key and version id after each case: a version listing on moto copies the
whole bucket, and a bucket that keeps growing slows every later case.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO, cast

import asyncpg
import httpx
from minio import Minio

from bwc.cli.generated import BLOCK, GeneratedRecording

PART = 5 * 1024 * 1024
TUS = {"Tus-Resumable": "1.0.0"}


class TransferFailed(Exception):
    pass


@dataclass
class Device:
    device_id: str
    token: str


@dataclass
class Stored:
    recording_id: str
    seconds: float


async def _body(recording: GeneratedRecording, offset: int, length: int
                ) -> AsyncIterator[bytes]:
    recording.seek(offset)
    while length:
        piece = recording.read(min(BLOCK, length))
        length -= len(piece)
        yield piece


def _metadata(device_id: str, sha256: str) -> str:
    meta = {"device_id": device_id, "trigger_reason": "bench", "announced": "true",
            "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "content_type": "video/mp4", "sha256": sha256}
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in meta.items())


async def through_ingest(http: httpx.AsyncClient, ingest_url: str, device: Device,
                         recording: GeneratedRecording, sha256: str, chunk: int) -> Stored:
    """Upload ``recording`` over tus; the time runs from the creation to the final answer
    (which comes after ingest verified and committed the recording)."""
    auth = {"Authorization": f"Bearer {device.token}", **TUS}
    started = time.perf_counter()
    created = await http.post(f"{ingest_url}/files/", headers={
        **auth, "Upload-Length": str(recording.size),
        "Upload-Metadata": _metadata(device.device_id, sha256)})
    if created.status_code != 201:
        raise TransferFailed(f"creation: {created.status_code} {created.text}")
    url = created.headers["Location"]
    offset, attempts = 0, 0
    while offset < recording.size:
        length = min(chunk, recording.size - offset)
        response = await http.patch(url, content=_body(recording, offset, length), headers={
            **auth, "Content-Type": "application/offset+octet-stream",
            "Upload-Offset": str(offset), "Content-Length": str(length)})
        if response.status_code == 204:
            offset, attempts = int(response.headers["Upload-Offset"]), 0
            continue
        attempts += 1
        if response.status_code not in (409, 423, 503) or attempts > 5:
            raise TransferFailed(f"PATCH at {offset}: {response.status_code} {response.text}")
        await asyncio.sleep(1)  # busy or storage trouble: resume as a tus client does
        offset = int((await http.head(url, headers=auth)).headers["Upload-Offset"])
    return Stored(url.rstrip("/").rsplit("/", 1)[-1], time.perf_counter() - started)


def direct(s3: Minio, bucket: str, key: str, recording: GeneratedRecording) -> float:
    recording.seek(0)
    started = time.perf_counter()
    # A seekable binary stream: minio reads it part by part.
    s3.put_object(bucket, key, cast(BinaryIO, recording), recording.size, part_size=PART)
    return time.perf_counter() - started


async def direct_many(s3: Minio, bucket: str, recordings: list[GeneratedRecording],
                      prefix: str) -> float:
    """All at once, one thread each (the default executor has fewer threads than that)."""
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(len(recordings)) as pool:
        started = time.perf_counter()
        await asyncio.gather(*(
            loop.run_in_executor(pool, direct, s3, bucket, f"{prefix}-{i}", recording)
            for i, recording in enumerate(recordings)))
        return time.perf_counter() - started


async def remove_ingested(db: asyncpg.Connection, s3: Minio, recording_id: str,
                          *, timeout: float = 120) -> float:
    """Wait until the catalogue has the recording, then remove its object by key and version;
    returns how long the recording took to reach the catalogue from now."""
    started = time.perf_counter()
    while (row := await db.fetchrow(
            "SELECT bucket, object_key, object_version_id FROM catalog.recordings "
            "WHERE id = $1::uuid", recording_id)) is None:
        if time.perf_counter() - started > timeout:
            raise TransferFailed(f"recording {recording_id} not in the catalogue")
        await asyncio.sleep(0.05)
    waited = time.perf_counter() - started
    await asyncio.to_thread(s3.remove_object, row["bucket"], row["object_key"],
                            version_id=row["object_version_id"])
    return waited
