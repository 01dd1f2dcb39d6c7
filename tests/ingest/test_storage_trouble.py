"""Object storage in trouble during a PATCH, and what ingest asks of it when all is well.

- S3 unreachable or failing → 503 + ``Retry-After``, the offset unchanged, the upload resumable
  once S3 is back; S3 out of space → 507 (issue 10, deliverable 5). Faults are injected at the
  network layer by a gate in front of the real S3 endpoint; out of space is the gate answering
  the S3 request with MinIO's own ``XMinioStorageFull`` response (moto never runs out of space).
- In the common case the recording is hashed while it arrives (R6) and never read back, every
  part carries Content-MD5 for S3 to verify, and nothing lists the bucket; only after the hash
  state was lost (another process took over) is the recording read back, once.
"""

from __future__ import annotations

import hashlib
import os
import re

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
from tests.fixtures.extra_ingest import extra_ingest
from tests.fixtures.gate import s3_gate, storage_full_answer

UPLOAD_PART = re.compile(rb"^PUT [^ ]*partNumber=")
SEGMENT_PUT = re.compile(rb"^PUT /recordings/incomplete/")
LISTING = re.compile(rb"^GET /recordings/?\?")


async def _patch(http: httpx.AsyncClient, url: str, device: Device, data: bytes, start: int,
                 end: int) -> httpx.Response:
    return await http.patch(url, content=data[start:end],
                            headers=patch_headers(device.token, start))


async def test_s3_unreachable_during_patch_is_503_offset_unchanged_and_resumable(
    stack: Stack, http: httpx.AsyncClient, device: Device
) -> None:
    data = os.urandom(7 * MIB)
    with s3_gate(stack.env["BWC_S3_ENDPOINT"]) as gate:
        async with extra_ingest(stack, BWC_S3_ENDPOINT=gate.url) as (base, _):
            url = await new_upload(http, stack, device, len(data), base_url=base)
            assert (await _patch(http, url, device, data, 0, MIB)).status_code == 204
            gate.open = False  # the endpoint goes away: connections cut, new ones refused
            gate.close_all()
            for start, end in ((MIB, 2 * MIB), (MIB, 7 * MIB)):  # a segment; parts
                refused = await _patch(http, url, device, data, start, end)
                assert refused.status_code == 503, (refused.status_code, refused.text)
                assert refused.headers["Retry-After"]
                assert refused.headers["Content-Type"].startswith("application/problem+json")
                assert refused.json()["title"] == "Object storage unavailable"
                assert await upload_offset(http, url, device) == MIB
            gate.open = True
            assert (await _patch(http, url, device, data, MIB, 2 * MIB)).status_code == 204
            done = await _patch(http, url, device, data, 2 * MIB, len(data))
            assert done.status_code == 204, done.text
    recording = await wait_for_recording(http, stack, recording_id_of(url))
    assert recording["sha256"] == hashlib.sha256(data).hexdigest()


async def test_s3_failing_parts_in_flight_is_503_and_resumable(
    stack: Stack, http: httpx.AsyncClient, device: Device
) -> None:
    """A whole-file PATCH whose parts S3 refuses while more of the body arrives: 503, nothing
    kept, and the same PATCH later stores the same recording."""
    data = os.urandom(23 * MIB)
    with s3_gate(stack.env["BWC_S3_ENDPOINT"]) as gate:
        async with extra_ingest(stack, BWC_S3_ENDPOINT=gate.url) as (base, _):
            url = await new_upload(http, stack, device, len(data), base_url=base)
            gate.fail = UPLOAD_PART
            refused = await _patch(http, url, device, data, 0, len(data))
            assert refused.status_code == 503, (refused.status_code, refused.text)
            assert refused.headers["Retry-After"]
            assert await upload_offset(http, url, device) == 0
            gate.fail = None
            done = await _patch(http, url, device, data, 0, len(data))
            assert done.status_code == 204, done.text
    recording = await wait_for_recording(http, stack, recording_id_of(url))
    assert recording["sha256"] == hashlib.sha256(data).hexdigest()


async def test_s3_out_of_space_is_507_offset_unchanged(
    stack: Stack, http: httpx.AsyncClient, device: Device
) -> None:
    data = os.urandom(7 * MIB)
    with s3_gate(stack.env["BWC_S3_ENDPOINT"]) as gate:
        async with extra_ingest(stack, BWC_S3_ENDPOINT=gate.url) as (base, _):
            url = await new_upload(http, stack, device, len(data), base_url=base)
            for pattern, end in ((SEGMENT_PUT, MIB), (UPLOAD_PART, 6 * MIB)):
                gate.answer = (pattern, storage_full_answer())
                full = await _patch(http, url, device, data, 0, end)
                assert full.status_code == 507, (full.status_code, full.text)
                assert full.headers["Content-Type"].startswith("application/problem+json")
                assert full.json()["title"] == "Object storage full"
                assert full.headers["Tus-Resumable"] == "1.0.0"
                assert await upload_offset(http, url, device) == 0
            gate.answer = None  # space freed
            done = await _patch(http, url, device, data, 0, len(data))
            assert done.status_code == 204, done.text
    recording = await wait_for_recording(http, stack, recording_id_of(url))
    assert recording["sha256"] == hashlib.sha256(data).hexdigest()


async def test_hashed_while_arriving_parts_verified_by_s3_no_read_back_no_listing(
    stack: Stack, http: httpx.AsyncClient, device: Device
) -> None:
    """R6 without reading the recording back: the SHA-256 is computed as the bytes arrive and
    every part is sent with Content-MD5 (S3 refuses a part whose bytes differ). Small chunks
    write one segment each, never read, rewrite or delete a tail per PATCH, and nothing lists
    the bucket, not even at completion."""
    data = os.urandom(12 * MIB + 5)
    with s3_gate(stack.env["BWC_S3_ENDPOINT"]) as gate:
        async with extra_ingest(stack, BWC_S3_ENDPOINT=gate.url) as (base, _):
            url = await new_upload(http, stack, device, len(data), base_url=base)
            recording_id = recording_id_of(url)
            gate.heads = heads = []
            for start in range(0, len(data), MIB):
                response = await _patch(http, url, device, data, start,
                                        min(start + MIB, len(data)))
                assert response.status_code == 204, response.text
            gate.heads = None
    recording = await wait_for_recording(http, stack, recording_id)
    assert recording["sha256"] == hashlib.sha256(data).hexdigest()
    lines = [h.split(b"\r\n", 1)[0] for h in heads]
    reads = [line for line in lines if line.startswith(b"GET ")]
    assert not [line for line in lines if LISTING.match(line)], lines
    # The recording is never read back; a segment only where this process lacked it (never).
    assert reads == [], reads
    parts = [h for h in heads if UPLOAD_PART.match(h)]
    assert len(parts) == 3  # 5 + 5 + 2 MiB
    assert all(b"\r\ncontent-md5: " in h.lower() for h in parts)
    # The MD5 is what protects a part's bytes, so it is signed; the payload itself is not
    # hashed a second time for the signature (x-amz-content-sha256: UNSIGNED-PAYLOAD).
    assert all(re.search(rb"signedheaders=[^,]*content-md5", h.lower()) for h in parts)
    assert all(b"\r\nx-amz-content-sha256: unsigned-payload" in h.lower() for h in parts)
    # One PUT per PATCH that leaves bytes below a part, no DELETE of a tail per PATCH.
    assert len([line for line in lines if SEGMENT_PUT.match(line)]) == 10
    deletes = [line for line in lines if line.startswith(b"DELETE ")]
    assert deletes == [], deletes  # superseded segments go in one DeleteObjects per part


async def test_lost_hash_state_reads_the_recording_back_once(
    stack: Stack, http: httpx.AsyncClient, device: Device
) -> None:
    """Another process (a replica, or this one restarted) takes over mid-upload: it has no
    running hash, so the completion reads the stored recording back, once, and the SHA-256
    is still that of every byte (R6)."""
    data = os.urandom(8 * MIB + 3)
    with s3_gate(stack.env["BWC_S3_ENDPOINT"]) as gate:
        async with extra_ingest(stack, BWC_S3_ENDPOINT=gate.url) as (first, _):
            url = await new_upload(http, stack, device, len(data), base_url=first)
            assert (await _patch(http, url, device, data, 0, 3 * MIB)).status_code == 204
        async with extra_ingest(stack, BWC_S3_ENDPOINT=gate.url) as (second, _):
            gate.heads = heads = []
            moved = url.replace(first, second)
            done = await _patch(http, moved, device, data, 3 * MIB, len(data))
            assert done.status_code == 204, done.text
            gate.heads = None
    recording = await wait_for_recording(http, stack, recording_id_of(url))
    assert recording["sha256"] == hashlib.sha256(data).hexdigest()
    reads = [h.split(b"\r\n", 1)[0] for h in heads if h.startswith(b"GET ")]
    object_reads = [r for r in reads if r.startswith(b"GET /recordings/recordings/")]
    segment_reads = [r for r in reads if r.startswith(b"GET /recordings/incomplete/")]
    assert len(object_reads) == 1, reads  # the recording, read back once
    assert len(segment_reads) == 1, reads  # the first PATCH's segment, to fill the first part
