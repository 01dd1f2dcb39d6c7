"""Tail objects written before segments (migration 004) are still removed (R5).

Before issue 10, a PATCH kept the bytes below a part in one object ``incomplete/<id>/tail-…``
and removed the previous one best effort; a crash or a failed removal left objects no row
named, and the upload's end removed the whole prefix. Rows that had already ended (completed
or closed, removal still pending) named no tail at all. The segment code removes only what
rows name, so after the upgrade those objects must still be named somewhere, or they outlive
the recording's deadline — and carry no ``recording-id`` for a scan to judge them by.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from bwc.db import create_pool, migrate
from bwc.devstack import infra
from bwc.devstack.stack import Stack
from bwc.outbox import OUTBOX_MIGRATIONS
from services.ingest import janitor
from services.ingest.app import MIGRATIONS
from tests.fixtures.clients import MIB, object_store, upload_store

INGEST_MIGRATIONS = Path(MIGRATIONS[1])


@pytest.fixture
async def legacy_pool(stack: Stack, tmp_path: Path) -> AsyncIterator[asyncpg.Pool]:
    """A database whose ingest schema stopped at migration 003 (tails, no segments)."""
    name = f"bwc_test_legacy_{uuid.uuid4().hex[:8]}"
    url = await asyncio.to_thread(infra.ensure_database, stack.server_url, name)
    old = tmp_path / INGEST_MIGRATIONS.name  # the same folder name: the same recorded names
    old.mkdir()
    for path in sorted(INGEST_MIGRATIONS.glob("00[123]_*.sql")):
        shutil.copy(path, old)
    pool = await create_pool(url, size=4)
    try:
        await migrate(pool, schema="ingest", sources=[OUTBOX_MIGRATIONS, old])
        yield pool
    finally:
        await pool.close()
        await infra.drop_database(stack.server_url, name)


async def _legacy_upload(conn: asyncpg.Connection, upload_id: uuid.UUID, *, state: str,
                         offset: int, tail_key: str | None, tail_size: int,
                         cleanup_pending: bool, expires_at: datetime) -> None:
    recorded_at = datetime.now(UTC) - timedelta(hours=1)
    metadata = {"recorded_at": recorded_at.isoformat(),
                "delete_after": (recorded_at + timedelta(days=14)).isoformat()}
    await conn.execute(
        "INSERT INTO ingest.uploads (id, device_id, upload_length, upload_offset,"
        " metadata_header, metadata, object_key, s3_upload_id, state, expires_at, tail_key,"
        " tail_size, cleanup_pending) VALUES ($1, 'cam-legacy', $2, $3, '', $4, $5,"
        " 'legacy-upload-id', $6, $7, $8, $9, $10)",
        upload_id, 10 * 1024 * 1024, offset, metadata, f"recordings/{upload_id}",
        state, expires_at, tail_key, tail_size, cleanup_pending)


async def test_tails_written_before_segments_are_removed_when_the_upload_ends(
    stack: Stack, legacy_pool: asyncpg.Pool
) -> None:
    objects = object_store(stack)
    now = datetime.now(UTC)
    closed, receiving = uuid.uuid4(), uuid.uuid4()
    current = f"incomplete/{receiving}/tail-0-1000"
    async with legacy_pool.acquire() as conn:
        await conn.execute("INSERT INTO ingest.devices (device_id, registered_by)"
                           " VALUES ('cam-legacy', 'test')")
        # Terminated before the upgrade; the janitor had not yet removed its prefix (S3 was
        # down): the row names no tail any more (tail_key cleared when it was closed).
        await _legacy_upload(conn, closed, state="terminated", offset=700, tail_key=None,
                             tail_size=0, cleanup_pending=True,
                             expires_at=now + timedelta(hours=1))
        # Receiving, with its current tail and an earlier one whose removal failed; it
        # expires after the upgrade.
        await _legacy_upload(conn, receiving, state="receiving", offset=1000, tail_key=current,
                             tail_size=1000, cleanup_pending=False,
                             expires_at=now - timedelta(seconds=1))
    # What the old code stored: no user metadata on tails.
    leftovers = {
        closed: [f"incomplete/{closed}/tail-0-700"],
        receiving: [f"incomplete/{receiving}/tail-0-500", current],
    }
    versions: dict[str, str | None] = {}
    for keys in leftovers.values():
        for key in keys:
            versions[key] = await objects.put_bytes(key, b"v" * int(key.rsplit("-", 1)[1]))
    async with legacy_pool.acquire() as conn:
        await conn.execute("UPDATE ingest.uploads SET tail_version = $2 WHERE id = $1",
                           receiving, versions[current])

    await migrate(legacy_pool, schema="ingest", sources=MIGRATIONS)  # the upgrade
    store = upload_store(stack)
    for _ in range(2):
        await janitor.sweep_once(legacy_pool, store)

    async with legacy_pool.acquire() as conn:
        states = dict(await conn.fetch(
            "SELECT id, state FROM ingest.uploads WHERE NOT cleanup_pending"))
    assert states == {closed: "terminated", receiving: "terminated"}
    left = [key for keys in leftovers.values() for key in keys
            if await objects.stat(key, versions[key]) is not None]
    assert left == [], f"R5: tails of ended uploads still stored: {left}"


async def test_a_completion_from_before_segments_that_crashed_after_s3_completed_finishes(
    stack: Stack, legacy_pool: asyncpg.Pool
) -> None:
    """A ``completing`` upload of the old code still had its tail in an object (it became the
    last part only during the completion). The new completion uploads it as the last part; if
    an attempt crashed after S3 completed the multipart upload, the next one must recognise
    the object, not fail on the part upload (NoSuchUpload) until the R2 deadline removes a
    recording that was received whole."""
    store = upload_store(stack)
    upload_id = uuid.uuid4()
    key = f"recordings/{upload_id}"
    data = os.urandom(5 * MIB + 100)
    recorded_at = datetime.now(UTC) - timedelta(hours=1)
    s3_id = await store.multipart.create(key, content_type="video/mp4", metadata={
        "recording-id": str(upload_id), "recorded-at": recorded_at.isoformat()})
    first = await store.multipart.upload_part(key, s3_id, 1, data[:5 * MIB])
    tail_key = f"incomplete/{upload_id}/tail-{5 * MIB}-{len(data)}"
    tail_version = await store.objects.put_bytes(tail_key, data[5 * MIB:])
    metadata = {"recorded_at": recorded_at.isoformat(), "content_type": "video/mp4",
                "trigger_reason": "threatening person", "announced": True,
                "imminent_danger": False, "in_home": False,
                "delete_after": (recorded_at + timedelta(days=14)).isoformat()}
    async with legacy_pool.acquire() as conn:
        await conn.execute("INSERT INTO ingest.devices (device_id, registered_by)"
                           " VALUES ('cam-legacy', 'test')")
        await conn.execute(
            "INSERT INTO ingest.uploads (id, device_id, upload_length, upload_offset,"
            " metadata_header, metadata, object_key, s3_upload_id, state, expires_at,"
            " received_at, tail_key, tail_version, tail_size) VALUES ($1, 'cam-legacy', $2,"
            " $3, '', $4, $5, $6, 'completing', now() + interval '1 hour', now(), $7, $8, 100)",
            upload_id, len(data), 5 * MIB, metadata, key, s3_id, tail_key, tail_version)
        await conn.execute("INSERT INTO ingest.upload_parts (upload_id, number, etag, size)"
                           " VALUES ($1, 1, $2, $3)", upload_id, first.etag, first.size)

    await migrate(legacy_pool, schema="ingest", sources=MIGRATIONS)  # the upgrade
    # A completion after the upgrade sent the tail as part 2, S3 completed the upload, and
    # the process died before recording it.
    last = await store.multipart.upload_part(key, s3_id, 2, data[5 * MIB:])
    await store.multipart.complete(key, s3_id, [first, last])

    await janitor.sweep_once(legacy_pool, store, recovery_grace=0)
    async with legacy_pool.acquire() as conn:
        row = await conn.fetchrow("SELECT state, sha256 FROM ingest.uploads WHERE id = $1",
                                  upload_id)
    assert (row["state"], row["sha256"]) == ("completed", hashlib.sha256(data).hexdigest())
    assert await store.objects.stat(tail_key, tail_version) is None  # R5
