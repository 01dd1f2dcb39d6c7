"""Two ingest replicas behind a round-robin proxy, one of them SIGKILLed (issue 10, item 4).

Both replicas share the stack's database schema, broker and bucket. Eight devices upload at
once with a standard tus client (tuspy); the proxy sends each request of an upload to the
other replica than the one before, so every upload's chunks alternate between them and no
replica can rely on state it kept in memory (a hash in progress, a cached tail). Replica A,
whose S3 traffic passes a gate, is killed at one of three points:

- ``mid_body``: half-way through the body of a PATCH (the proxy holds the rest back);
- ``part_stored``: S3 stored a part of a PATCH A is receiving, but A never learned it (the
  gate swallows S3's answer), so the offset was never committed;
- ``completing``: S3 completed a multipart upload but A never learned it (same gate), so the
  upload is left ``completing`` with its bytes already joined into the object.

The uploads hit by the kill wait until A is restarted, then resume as tus clients do (HEAD,
then PATCH from the offset shown), and go on alternating. In the end every recording is in the
catalogue exactly once, with the SHA-256 of the bytes the device sent (R6), and the stored
object read back through S3 is those bytes.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
from tusclient import client as tus_client
from tusclient.exceptions import TusCommunicationError

from bwc.devstack.stack import Stack
from tests.fixtures.clients import (
    MIB,
    Device,
    auth,
    object_store,
    recording_id_of,
    recording_metadata,
    register_device,
    wait_for_recording,
)
from tests.fixtures.gate import S3Gate, s3_gate
from tests.fixtures.proxy import Hold, RoundRobinProxy, round_robin
from tests.fixtures.replicas import Replica, ingest_replicas

#: (file size, tus chunk size): 2 to 12 MiB, odd sizes, chunks below and above the 5 MiB S3 part,
#: so tails, parts and multi-part completions all cross replicas; an odd number of PATCHes
#: ends on replica A, where the completion can be killed.
FILES = [
    (2 * MIB + 1, 1 * MIB),
    (3 * MIB + 333, 1 * MIB),
    (5 * MIB + 77, 2 * MIB),
    (6 * MIB + 5, 5 * MIB),
    (8 * MIB + 1234, 5 * MIB + 7),
    (10 * MIB + 99, 5 * MIB),
    (11 * MIB + 17, 5 * MIB + 3),
    (12 * MIB + 1, 3 * MIB),
]
#: Pause between two chunks of one upload, so the kill finds uploads at every stage.
PACE = 0.05
#: Answers after which resuming cannot help.
FATAL = {400, 401, 403, 404, 410, 413, 422}
A, B = 0, 1


@dataclass
class Upload:
    device: Device
    path: Path
    data: bytes
    chunk_size: int
    url: str = ""
    failures: list[str] = field(default_factory=list)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def drive(upload: Upload, proxy_url: str, killed: threading.Event, resumed: threading.Event,
          deadline: float) -> None:
    """Upload one file chunk by chunk as a tus client does; after a failure, wait until the
    killed replica is back (when it was the kill), HEAD the offset and resume."""
    client = tus_client.TusClient(f"{proxy_url}/files/", headers=auth(upload.device.token))
    uploader = client.uploader(
        str(upload.path), chunk_size=upload.chunk_size, upload_checksum=True, retries=0,
        metadata=recording_metadata(upload.device.device_id, sha256=upload.sha256))
    size = len(upload.data)
    while True:
        try:
            if not uploader.url:
                uploader.set_url(uploader.create_url())
                upload.url = str(uploader.url)
            if uploader.offset >= size:
                return
            uploader.upload_chunk()
            time.sleep(PACE)
            continue
        except TusCommunicationError as exc:
            upload.failures.append(f"{exc.status_code}: {exc}")
            if exc.status_code in FATAL or time.monotonic() > deadline:
                raise
        if killed.is_set():
            resumed.wait(timeout=max(0.0, deadline - time.monotonic()))
        time.sleep(0.2)
        if uploader.url:
            try:
                uploader.offset = uploader.get_offset()
            except TusCommunicationError as exc:
                upload.failures.append(f"HEAD {exc.status_code}: {exc}")


def arm(kill_point: str, proxy: RoundRobinProxy, gate: S3Gate) -> Hold | None:
    """Prepare the kill point; returns the proxy's hold for ``mid_body``."""
    if kill_point == "mid_body":
        # Not the first PATCH A sees: by then the other uploads are under way.
        return proxy.hold_patch(A, skip=4)
    if kill_point == "part_stored":
        gate.mute = re.compile(rb"^PUT [^ ]*partNumber=")
    else:  # completing: CompleteMultipartUpload is POST ...?uploadId= (creation is ?uploads)
        gate.mute = re.compile(rb"^POST [^ ]*\?uploadId=")
    return None


async def reached(kill_point: str, hold: Hold | None, gate: S3Gate) -> None:
    if hold is not None:
        await asyncio.wait_for(hold.reached.wait(), 60)
        return
    # S3 acted on the muted request and answered; A waits for an answer that never comes.
    assert await asyncio.to_thread(gate.swallowed.wait, 60), (
        f"{kill_point}: no such S3 request from replica A within 60 s")


@pytest.mark.parametrize("kill_point", ["mid_body", "part_stored", "completing"])
async def test_uploads_alternating_between_replicas_survive_a_killed_replica(
    stack: Stack, http: httpx.AsyncClient, db: asyncpg.Connection, tmp_path: Path,
    kill_point: str,
) -> None:
    uploads = []
    for i, (size, chunk_size) in enumerate(FILES):
        data = os.urandom(size)
        path = tmp_path / f"clip-{i}.mp4"
        path.write_bytes(data)
        uploads.append(Upload(await register_device(stack, http), path, data, chunk_size))

    with (
        s3_gate(stack.env["BWC_S3_ENDPOINT"]) as gate,
        ThreadPoolExecutor(max_workers=len(uploads), thread_name_prefix="tus-driver") as drivers,
    ):
        async with (
            ingest_replicas(stack, [{"BWC_S3_ENDPOINT": gate.url}, {}]) as replicas,
            round_robin([r.address for r in replicas]) as proxy,
        ):
            replica_a: Replica = replicas[A]
            hold = arm(kill_point, proxy, gate)
            killed, resumed = threading.Event(), threading.Event()
            deadline = time.monotonic() + 120
            # Threads of their own: in the default executor (6 workers on 2 cores) the eight
            # drivers, waiting for the restart, left no worker for the kill and the restart
            # themselves, which then waited for the drivers' deadline (128 s instead of 9 s).
            loop = asyncio.get_running_loop()
            running = asyncio.gather(*(
                loop.run_in_executor(drivers, drive, u, proxy.url, killed, resumed, deadline)
                for u in uploads))
            try:
                await reached(kill_point, hold, gate)
                killed.set()  # first: a driver that fails now must wait for the restart
                await replica_a.kill()
                if kill_point == "completing":
                    # Joined in S3, unknown to the database: the state the kill is meant for.
                    ids = [recording_id_of(u.url) for u in uploads if u.url]
                    assert await db.fetchval(
                        "SELECT count(*) FROM ingest.uploads WHERE id = ANY($1::uuid[]) "
                        "AND state = 'completing'", ids) >= 1
                gate.mute = None
                if hold is not None:
                    hold.release.set()
                await replica_a.start()
                resumed.set()
            finally:
                resumed.set()  # a failed step above must not leave the drivers waiting
                await running

    # The kill hit at least one upload, which resumed; every upload's chunks went to both
    # replicas (all to B only while A was down).
    assert any(u.failures for u in uploads), "the kill interrupted no upload"
    if hold is not None:
        held = next(u for u in uploads if urlsplit(u.url).path == hold.path)
        assert held.failures, "the PATCH cut mid-body did not fail"
    for u in uploads:
        routes = proxy.routes_of(urlsplit(u.url).path)
        assert {A, B} <= {r.replica for r in routes} or any(r.stood_in for r in routes), (
            u.url, routes)

    store = object_store(stack)
    for u in uploads:
        recording_id = recording_id_of(u.url)
        recording = await wait_for_recording(http, stack, recording_id)
        assert recording["sha256"] == u.sha256, u.failures
        assert recording["size_bytes"] == len(u.data)
        # Exactly once: one catalogue row, one recording.ingested in ingest's outbox.
        rows = await db.fetch("SELECT object_key, object_version_id FROM catalog.recordings "
                              "WHERE id = $1::uuid", recording_id)
        assert len(rows) == 1
        assert await db.fetchval(
            "SELECT count(*) FROM ingest.outbox WHERE key = $1 "
            "AND payload->>'type' = 'recording.ingested'", recording_id) == 1
        assert await db.fetchval("SELECT state FROM ingest.uploads WHERE id = $1::uuid",
                                 recording_id) == "completed"
        stored = b"".join([piece async for piece in store.iter_object(
            rows[0]["object_key"], rows[0]["object_version_id"])])
        assert stored == u.data, f"{recording_id}: stored bytes differ ({len(stored)} bytes)"
