"""Media (issue 7, deliverable 2): ``GET /api/v1/recordings/{id}/media?purpose=`` streams the
stored object with HTTP Range so a browser's player can seek, and writes one ``view_media``
audit entry per request with actor, purpose and byte range (R7). Real stack: uploads through
tus, the broker, Postgres, moto's S3 endpoint, review over HTTP."""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from bwc.devstack.stack import Stack
from bwc.events import Topic
from tests.fixtures.clients import auth, mint, object_store
from tests.fixtures.events import deleted_event, hold_placed_event, ingested_event
from tests.fixtures.gate import s3_gate
from tests.fixtures.holds import outbox_entries, publish
from tests.fixtures.review import uploaded_recording, wait_in_review
from tests.fixtures.services import extra_service

PURPOSE = "Sichtung nach Einsatz"
# More than two of the 1 MiB pieces the body streams in, and not a multiple of them.
DATA = os.urandom(2 * 1024 * 1024 + 12345)
SIZE = len(DATA)


@pytest.fixture(scope="module")
async def recording(stack: Stack) -> uuid.UUID:
    async with httpx.AsyncClient(timeout=60) as http:
        conn = await asyncpg.connect(stack.env["BWC_DATABASE_URL"])
        try:
            return await uploaded_recording(http, stack, conn, DATA)
        finally:
            await conn.close()


def _media(stack: Stack, rid: uuid.UUID, base_url: str | None = None) -> str:
    return f"{base_url or stack.url('review')}/api/v1/recordings/{rid}/media"


async def _get(http: httpx.AsyncClient, stack: Stack, rid: uuid.UUID, *,
               role: str = "reviewer", sub: str = "rita", purpose: str | None = PURPOSE,
               base_url: str | None = None, **headers: str) -> httpx.Response:
    params = {"purpose": purpose} if purpose is not None else {}
    return await http.get(_media(stack, rid, base_url), params=params,
                          headers={**auth(mint(stack, role, sub)), **headers})


async def _view_entries(db: asyncpg.Connection, rid: uuid.UUID, count: int) -> list[dict[str, Any]]:
    """The ``view_media`` entries review wrote for ``rid``, once there are ``count``."""
    for _ in range(50):
        entries = [e["data"] for e in await outbox_entries(db, rid, Topic.AUDIT)
                   if e["data"]["action"] == "view_media"]
        if len(entries) >= count:
            return entries
        await asyncio.sleep(0.1)
    raise AssertionError(f"{len(entries)} view_media entries for {rid}, expected {count}")


async def test_ranges_a_player_asks_for_give_the_uploaded_bytes(
    stack: Stack, http: httpx.AsyncClient, db: asyncpg.Connection, recording: uuid.UUID
) -> None:
    """First bytes, a middle range across a 1 MiB piece boundary, a suffix range, an
    open-ended range, one clamped at the end: 206 with the exact bytes of the upload."""
    etag = f'"{hashlib.sha256(DATA).hexdigest()}"'
    mib = 1024 * 1024
    for header, start, end in (("bytes=0-99", 0, 99),
                               (f"bytes={mib - 10}-{mib + 9}", mib - 10, mib + 9),
                               ("bytes=-500", SIZE - 500, SIZE - 1),
                               (f"bytes={SIZE - 1000}-", SIZE - 1000, SIZE - 1),
                               (f"bytes={SIZE - 5}-{SIZE + 100}", SIZE - 5, SIZE - 1),
                               ("bytes=1-", 1, SIZE - 1)):
        response = await _get(http, stack, recording, Range=header)
        assert response.status_code == 206, (header, response.text)
        assert response.content == DATA[start:end + 1], header
        assert response.headers["Content-Range"] == f"bytes {start}-{end}/{SIZE}"
        assert response.headers["Content-Length"] == str(end - start + 1)
        assert response.headers["Accept-Ranges"] == "bytes"
        assert response.headers["ETag"] == etag
        assert response.headers["Content-Type"] == "video/mp4"
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["X-Content-Type-Options"] == "nosniff"

    whole = await _get(http, stack, recording)
    assert whole.status_code == 200
    assert whole.content == DATA
    assert (whole.headers["Content-Length"], whole.headers["Accept-Ranges"],
            whole.headers["ETag"]) == (str(SIZE), "bytes", etag)
    assert "Content-Range" not in whole.headers


async def test_unsatisfiable_and_invalid_ranges_are_416_with_the_size(
    stack: Stack, http: httpx.AsyncClient, recording: uuid.UUID
) -> None:
    for header in (f"bytes={SIZE}-", f"bytes={SIZE + 10}-{SIZE + 20}", "bytes=-0",
                   "bytes=500-100"):
        response = await _get(http, stack, recording, Range=header)
        assert response.status_code == 416, (header, response.text)
        assert response.headers["Content-Range"] == f"bytes */{SIZE}"
        assert response.headers["Content-Type"] == "application/problem+json"
        assert str(SIZE) in response.json()["detail"]


async def test_several_ranges_or_a_stale_if_range_get_the_whole_recording(
    stack: Stack, http: httpx.AsyncClient, recording: uuid.UUID
) -> None:
    etag = f'"{hashlib.sha256(DATA).hexdigest()}"'
    same = await _get(http, stack, recording, Range="bytes=10-19", **{"If-Range": etag})
    assert (same.status_code, same.content) == (206, DATA[10:20])
    for headers in ({"Range": "bytes=0-9,20-29"},
                    {"Range": "bytes=10-19", "If-Range": '"an-older-version"'},
                    {"Range": "bytes=10-19", "If-Range": "Wed, 25 Nov 2026 08:00:00 GMT"},
                    {"Range": "pages=1-2"}):
        response = await _get(http, stack, recording, **headers)
        assert (response.status_code, len(response.content)) == (200, SIZE), headers
        assert response.content == DATA


async def test_every_request_is_audited_with_actor_purpose_and_range(
    stack: Stack, http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """R7: one ``view_media`` entry per request, committed before the bytes go out, naming
    actor, role, purpose, the range sent and the result; a refused range is recorded too."""
    data = os.urandom(10_000)
    rid = await uploaded_recording(http, stack, db, data)
    assert (await _get(http, stack, rid, Range="bytes=0-99")).status_code == 206
    assert (await _get(http, stack, rid, role="supervisor", sub="sven",
                       purpose="Anfrage der betroffenen Person")).status_code == 200
    assert (await _get(http, stack, rid, Range="bytes=20000-")).status_code == 416
    entries = await _view_entries(db, rid, 3)
    assert [(e["actor"], e["role"], e["purpose"], e["details"]["range"],
             e["details"]["result"], e["recording_id"], e["source_service"])
            for e in entries] == [
        ("rita", "reviewer", PURPOSE, "bytes 0-99/10000", "ok", str(rid), "review"),
        ("sven", "supervisor", "Anfrage der betroffenen Person", "bytes 0-9999/10000", "ok",
         str(rid), "review"),
        ("rita", "reviewer", PURPOSE, None, "range_not_satisfiable", str(rid), "review"),
    ]


async def test_purpose_is_required(
    stack: Stack, http: httpx.AsyncClient, db: asyncpg.Connection, recording: uuid.UUID
) -> None:
    """R7: without a purpose nothing is shown and nothing is recorded as shown."""
    before = len(await outbox_entries(db, recording, Topic.AUDIT))
    for purpose in (None, "", "   ", "\t\n"):
        response = await _get(http, stack, recording, purpose=purpose)
        assert response.status_code == 400, (purpose, response.text)
        assert [e["field"] for e in response.json()["errors"]] == ["query.purpose"], response.text
    assert len(await outbox_entries(db, recording, Topic.AUDIT)) == before


async def test_unknown_404_deleted_410_past_deadline_410_unless_held(
    stack: Stack, http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """R2, R3, R5: unknown → 404, deleted → 410, past its deadline without a hold → 410 (due
    for deletion); held past its deadline it is evidence and can be viewed. Every attempt is
    in the audit log with its result."""
    store = object_store(stack)
    past = datetime.now(UTC) - timedelta(minutes=1)
    deleted, expired, held, unknown = (uuid.uuid4() for _ in range(4))
    content = b"held evidence"
    version = await store.put_bytes(f"recordings/{held}", content)
    await publish(stack, ingested_event(deleted), deleted_event(deleted),
                  ingested_event(expired, delete_after=past),
                  ingested_event(held, delete_after=past, object_version_id=version,
                                 size_bytes=len(content),
                                 sha256=hashlib.sha256(content).hexdigest()),
                  hold_placed_event(held))
    for _ in range(300):
        if await db.fetchval("SELECT 1 FROM review.deleted_recordings WHERE id = $1", deleted):
            break
        await asyncio.sleep(0.1)
    await wait_in_review(db, expired)
    await wait_in_review(db, held)
    for _ in range(100):
        if await db.fetchval("SELECT count(*) FROM review.holds WHERE recording_id = $1", held):
            break
        await asyncio.sleep(0.1)

    gone = await _get(http, stack, deleted)
    assert gone.status_code == 410 and "R5" in gone.json()["detail"], gone.text
    due = await _get(http, stack, expired)
    assert due.status_code == 410 and "R2" in due.json()["detail"], due.text
    missing = await _get(http, stack, unknown)
    assert missing.status_code == 404, missing.text
    kept = await _get(http, stack, held)
    assert (kept.status_code, kept.content) == (200, content)

    for rid, result in ((deleted, "deleted"), (expired, "expired"), (unknown, "unknown"),
                        (held, "ok")):
        [entry] = await _view_entries(db, rid, 1)
        assert (entry["details"]["result"], entry["purpose"]) == (result, PURPOSE), rid


async def test_s3_unreachable_is_503_before_any_byte(
    stack: Stack, http: httpx.AsyncClient, db: asyncpg.Connection, recording: uuid.UUID
) -> None:
    """The object is opened before the status line: S3 away is a 503 with Retry-After, not a
    200 with a broken body."""
    seen = len(await _view_entries(db, recording, 0))
    with s3_gate(stack.env["BWC_S3_ENDPOINT"]) as gate:
        async with extra_service(stack, "review", env={"BWC_S3_ENDPOINT": gate.url}) as review:
            gate.open = False
            gate.close_all()
            refused = await _get(http, stack, recording, base_url=review.url,
                                 Range="bytes=0-9", sub="refused-by-s3")
            assert refused.status_code == 503, refused.text
            assert refused.headers["Retry-After"]
            assert refused.json()["title"] == "Object storage unavailable"
            # Nothing was shown, so nothing is recorded as shown (nor as refused).
            assert len(await _view_entries(db, recording, 0)) == seen
            gate.open = True
            served = await _get(http, stack, recording, base_url=review.url,
                                Range="bytes=0-9")
            assert (served.status_code, served.content) == (206, DATA[:10])
    assert len(await _view_entries(db, recording, seen + 1)) == seen + 1


async def test_the_entry_is_committed_before_the_first_byte(
    stack: Stack, http: httpx.AsyncClient, db: asyncpg.Connection, recording: uuid.UUID
) -> None:
    """R7: by the time the status line and the first piece arrive, the view is recorded —
    not after the body was sent."""
    seen = len(await _view_entries(db, recording, 0))
    async with http.stream("GET", _media(stack, recording), params={"purpose": PURPOSE},
                           headers=auth(mint(stack, "reviewer", "rita-streaming"))) as response:
        assert response.status_code == 200
        pieces = response.aiter_raw()
        assert await anext(pieces)
        entries = [e["data"] for e in await outbox_entries(db, recording, Topic.AUDIT)
                   if e["data"]["action"] == "view_media"]
        assert len(entries) == seen + 1
        assert (entries[-1]["actor"], entries[-1]["details"]["range"]) == (
            "rita-streaming", f"bytes 0-{SIZE - 1}/{SIZE}")


async def test_an_object_already_gone_from_storage_is_410_and_recorded(
    stack: Stack, http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """Retention removed the stored version before review applied ``recording.deleted``:
    410 (not a 503 to retry), and the attempt is recorded as ``deleted``."""
    store = object_store(stack)
    rid = uuid.uuid4()
    content = b"deleted a moment ago"
    version = await store.put_bytes(f"recordings/{rid}", content)
    assert version
    await publish(stack, ingested_event(rid, object_version_id=version, size_bytes=len(content),
                                        sha256=hashlib.sha256(content).hexdigest()))
    await wait_in_review(db, rid)
    await store.delete_version(f"recordings/{rid}", version)
    response = await _get(http, stack, rid)
    assert response.status_code == 410, response.text
    assert "R5" in response.json()["detail"]
    [entry] = await _view_entries(db, rid, 1)
    assert (entry["details"]["result"], entry["details"]["range"]) == ("deleted", None)
