"""Where the server ends a PATCH or a creation itself — the R2 deadline passing mid-body, a
shutdown, a stalled or checksummed chunk, S3 failing, creation outlasting the recovery grace —
the device is told the truth (422/503, never 460 or 500) and nothing is kept past its deadline
or left behind in S3 (R2, R5). Real stack: Postgres, the S3 endpoint (behind a gate), service
processes."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import re
import signal
import socket
import time
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest

from bwc.db import create_pool
from bwc.devstack.stack import Stack
from bwc.problems import Problem
from services.ingest import creation, janitor
from services.ingest import repository as repo
from tests.fixtures.clients import (
    MIB,
    Device,
    new_upload,
    object_store,
    patch_headers,
    recording_id_of,
    upload_offset,
    upload_store,
)
from tests.fixtures.extra_ingest import extra_ingest
from tests.fixtures.gate import s3_gate
from tests.fixtures.services import extra_service

#: UploadPart (``PUT …?partNumber=…&uploadId=…``).
UPLOAD_PART = re.compile(rb"^PUT [^ ]*partNumber=")


def _open_patch(url: str, token: str, *, announce: int, data: bytes, extra: str = ""
                ) -> socket.socket:
    """A PATCH over a bare socket that announces ``announce`` bytes and sends ``data``, then
    sends nothing more (a device whose link stalled)."""
    authority, _, rest = url.split("://", 1)[1].partition("/")
    port = int(authority.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall((f"PATCH /{rest} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  f"Authorization: Bearer {token}\r\nTus-Resumable: 1.0.0\r\n"
                  "Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\n"
                  f"{extra}Content-Length: {announce}\r\n\r\n").encode())
    sock.sendall(data)
    return sock


def _answer(sock: socket.socket, timeout: float) -> bytes:
    sock.settimeout(timeout)
    try:
        return sock.recv(65536)
    except OSError:
        return b""
    finally:
        sock.close()


def _multipart_uploads_of(stack: Stack, key: str) -> list[str]:
    store = object_store(stack)
    result = store.client._list_multipart_uploads(store.bucket, prefix=key)
    return [u.upload_id for u in result.uploads if u.object_name == key]


async def test_sigterm_cuts_off_a_stalled_patch_and_keeps_its_bytes(
    stack: Stack, http: httpx.AsyncClient, device: Device
) -> None:
    """Graceful shutdown: a PATCH whose device sends nothing at the moment of SIGTERM must end
    at once with 503 and keep what arrived — not wait for the idle timeout, outlive the grace
    period and be cancelled with every byte of it lost."""
    sent = 6 * MIB  # one S3 part and a little more
    async with extra_service(stack, "ingest", env={
            "BWC_SHUTDOWN_DRAIN": "1", "BWC_SHUTDOWN_GRACE": "4",
            "BWC_INGEST_BODY_IDLE_TIMEOUT": "30"}) as leaving:
        url = await new_upload(http, stack, device, 16 * MIB, base_url=leaving.url)
        sock = await asyncio.to_thread(_open_patch, url, device.token, announce=16 * MIB,
                                       data=os.urandom(sent))
        await asyncio.sleep(1.5)  # the bytes arrived, the first part is in S3; then silence
        started = time.monotonic()
        leaving.child.process.send_signal(signal.SIGTERM)
        answer = await asyncio.to_thread(_answer, sock, 15)
        assert answer.startswith(b"HTTP/1.1 503"), answer[:300]
        assert time.monotonic() - started < 3  # at once, not after the idle timeout
    offset = await upload_offset(http, url.replace(leaving.url, stack.url("ingest")), device)
    assert offset == sent


async def test_patch_running_past_the_r2_deadline_is_ended_and_its_bytes_removed(
    stack: Stack, http: httpx.AsyncClient, device: Device, db: asyncpg.Connection
) -> None:
    """R2: a PATCH that keeps a slow but steady body going must not keep the recording's bytes
    in S3 past its deadline (the janitor cannot take the upload's lock while it runs)."""
    deadline = datetime.now(UTC) + timedelta(seconds=4)
    url = await new_upload(http, stack, device, 16 * MIB,
                           recorded_at=(deadline - timedelta(days=14)).isoformat())
    recording_id = recording_id_of(url)

    def trickle() -> tuple[bytes, datetime]:
        sock = _open_patch(url, device.token, announce=16 * MIB, data=os.urandom(6 * MIB))
        sock.settimeout(0.5)
        end = time.monotonic() + 15
        try:
            while time.monotonic() < end:  # a byte every 0.5 s, well within the idle timeout
                try:
                    answer, at = sock.recv(65536), datetime.now(UTC)
                    with contextlib.suppress(OSError):
                        while b"}" not in answer and (more := sock.recv(65536)):
                            answer += more
                    return answer, at
                except TimeoutError:
                    sock.sendall(b"x")
            return b"", datetime.now(UTC)
        finally:
            sock.close()

    answer, answered = await asyncio.to_thread(trickle)
    assert answer.startswith(b"HTTP/1.1 422"), answer[:300]
    assert b"Retention deadline passed" in answer
    # Ended at the deadline, not when the device chose to stop.
    assert answered - deadline < timedelta(seconds=3)
    row = await db.fetchrow("SELECT state, metadata = '{}'::jsonb AS erased FROM ingest.uploads"
                            " WHERE id = $1::uuid", recording_id)
    assert row["state"] in ("terminated", "rejected") and row["erased"]
    assert not await asyncio.to_thread(_multipart_uploads_of, stack, f"recordings/{recording_id}")


async def test_object_storage_failure_during_patch_is_503_not_500(
    stack: Stack, http: httpx.AsyncClient, device: Device
) -> None:
    """S3 away while a PATCH streams: the device is told to come back (503 + Retry-After, in
    tus terms), not handed a 500; the offset stays where it was."""
    with s3_gate(stack.env["BWC_S3_ENDPOINT"]) as gate:
        async with extra_ingest(stack, BWC_S3_ENDPOINT=gate.url) as (base, _):
            url = await new_upload(http, stack, device, 16 * MIB, base_url=base)
            gate.fail = UPLOAD_PART
            response = await http.patch(url, content=os.urandom(6 * MIB),
                                        headers=patch_headers(device.token, 0))
            assert response.status_code == 503, (response.status_code, response.text)
            assert response.headers.get("Retry-After")
            assert response.headers.get("Tus-Resumable") == "1.0.0"
            gate.fail = None
            assert await upload_offset(http, url, device) == 0


async def test_creation_outlasting_the_recovery_grace_leaves_no_multipart_upload(
    stack: Stack, device: Device, db: asyncpg.Connection
) -> None:
    """Creation vs janitor: when S3 answers the CreateMultipartUpload only after the janitor
    has closed the ``creating`` row (the call outlasted the recovery grace), the device must
    not get 201 for a closed upload, and the multipart upload S3 made must not be left behind
    with nothing to remove it (R5)."""
    store = upload_store(stack)
    pool = await create_pool(stack.env["BWC_DATABASE_URL"], size=3)
    upload_id = uuid.uuid4()
    key = f"recordings/{upload_id}"
    real_create = store.create

    async def slow_create(upload_id: uuid.UUID, *, key: str, content_type: str,
                          recorded_at: str) -> str:
        # While S3 takes its time, the janitor's sweep finds the row still 'creating' past its
        # grace, closes it and finds no multipart upload to abort yet ...
        async with pool.acquire() as conn:
            assert await repo.try_lock(conn, upload_id)
            try:
                upload = await repo.get_upload(conn, upload_id)
                assert upload is not None
                await janitor._handle(conn, store, upload, datetime.now(UTC))
            finally:
                await repo.unlock(conn, upload_id)
        # ... and then S3 answers.
        return await real_create(upload_id, key=key, content_type=content_type,
                                 recorded_at=recorded_at)

    store.create = slow_create  # type: ignore[method-assign]
    now = datetime.now(UTC)
    try:
        with pytest.raises(Problem) as refused:
            await creation.create_multipart_upload(
                pool, store, upload_id=upload_id, device_id=device.device_id, length=10,
                metadata_header="", metadata={"delete_after": (now + timedelta(days=1))
                                              .isoformat()},
                object_key=key, content_type="video/mp4", recorded_at=now.isoformat(),
                expires_at=now + timedelta(hours=1))
        assert refused.value.status == 503
        # Removed by the janitor's next sweep at the latest (the stack's runs every second).
        for _ in range(50):
            left = await asyncio.to_thread(_multipart_uploads_of, stack, key)
            if not left:
                break
            await asyncio.sleep(0.2)
        assert not left, f"a multipart upload nobody will delete: {left}"
    finally:
        await pool.close()


async def test_cut_off_chunk_with_a_checksum_is_503_not_460(
    stack: Stack, http: httpx.AsyncClient, device: Device
) -> None:
    """A chunk with Upload-Checksum that the server ends (idle, too slow, shutdown) cannot be
    verified and is not kept — but it is not corrupt either: 460 would tell a tus client
    (tus-js-client does not retry a 4xx) that the device's data is bad, and stop the upload."""
    body = os.urandom(2 * MIB)
    digest = base64.b64encode(hashlib.sha1(body).digest()).decode()
    url = await new_upload(http, stack, device, len(body))
    sock = await asyncio.to_thread(_open_patch, url, device.token, announce=len(body),
                                   data=body[:MIB], extra=f"Upload-Checksum: sha1 {digest}\r\n")
    # The stack's idle timeout is 2 s: the server ends the body.
    answer = await asyncio.to_thread(_answer, sock, 15)
    assert answer.startswith(b"HTTP/1.1 503"), answer[:300]
    assert b"retry-after" in answer.lower()
    assert await upload_offset(http, url, device) == 0  # nothing unverified was kept
