"""Segments whose bytes went into a part are removed after the PATCH is answered (R5).

The device need not wait for their DeleteObjects; their rows go only once S3 confirmed the
removal, so a removal that fails leaves rows that the completion still acts on.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re

import asyncpg
import httpx

from bwc.devstack.stack import Stack
from bwc.s3 import ObjectStore
from tests.fixtures.clients import (
    MIB,
    Device,
    new_upload,
    object_store,
    patch_headers,
    recording_id_of,
    wait_for_recording,
)
from tests.fixtures.extra_ingest import extra_ingest
from tests.fixtures.gate import s3_gate

DELETE_OBJECTS = re.compile(rb"^POST [^ ]*\?delete")


async def _segments(db: asyncpg.Connection, recording_id: str) -> list[asyncpg.Record]:
    return list(await db.fetch(
        "SELECT key, version_id FROM ingest.upload_segments WHERE upload_id = $1::uuid"
        " ORDER BY start_offset", recording_id))


def _stored_segments(store: ObjectStore, recording_id: str) -> list[str]:
    return [o.object_name for o in store.client.list_objects(
        store.bucket, prefix=f"incomplete/{recording_id}/", include_version=True,
        recursive=True)]


async def _patch_mib(http: httpx.AsyncClient, url: str, device: Device, data: bytes,
                     index: int) -> None:
    start = index * MIB
    response = await http.patch(url, content=data[start:start + MIB],
                                headers=patch_headers(device.token, start))
    assert response.status_code == 204, response.text


async def test_segments_in_a_part_are_removed_after_the_answer(
    stack: Stack, http: httpx.AsyncClient, device: Device, db: asyncpg.Connection
) -> None:
    data = os.urandom(6 * MIB)
    url = await new_upload(http, stack, device, len(data))
    recording_id = recording_id_of(url)
    for index in range(4):  # four segments below the 5 MiB part
        await _patch_mib(http, url, device, data, index)
    below_part = await _segments(db, recording_id)
    assert len(below_part) == 4
    await _patch_mib(http, url, device, data, 4)  # fills the part from the four segments
    store = object_store(stack)
    for _ in range(100):
        if not await _segments(db, recording_id):
            break
        await asyncio.sleep(0.05)
    assert await _segments(db, recording_id) == []
    assert _stored_segments(store, recording_id) == []  # S3 confirmed before the rows went
    await _patch_mib(http, url, device, data, 5)
    recording = await wait_for_recording(http, stack, recording_id)
    assert recording["sha256"] == hashlib.sha256(data).hexdigest()


async def test_a_failed_removal_after_the_answer_keeps_the_rows_for_the_completion(
    stack: Stack, http: httpx.AsyncClient, device: Device, db: asyncpg.Connection
) -> None:
    data = os.urandom(6 * MIB)
    with s3_gate(stack.env["BWC_S3_ENDPOINT"]) as gate:
        async with extra_ingest(stack, BWC_S3_ENDPOINT=gate.url) as (base, _):
            url = await new_upload(http, stack, device, len(data), base_url=base)
            recording_id = recording_id_of(url)
            for index in range(4):
                await _patch_mib(http, url, device, data, index)
            below_part = await _segments(db, recording_id)
            gate.fail = DELETE_OBJECTS
            await _patch_mib(http, url, device, data, 4)
            await asyncio.to_thread(gate.matched.wait, 10)
            assert gate.matched.is_set()
            await asyncio.sleep(0.5)  # the removal after the answer has failed by now
            # R5: S3 did not confirm, so the rows still name every segment.
            assert await _segments(db, recording_id) == below_part
            gate.fail = None
            await _patch_mib(http, url, device, data, 5)
            recording = await wait_for_recording(http, stack, recording_id)
    assert recording["sha256"] == hashlib.sha256(data).hexdigest()
    store = object_store(stack)
    for _ in range(100):  # the completion removes what the rows name
        if not await _segments(db, recording_id):
            break
        await asyncio.sleep(0.05)
    assert await _segments(db, recording_id) == []
    assert _stored_segments(store, recording_id) == []
