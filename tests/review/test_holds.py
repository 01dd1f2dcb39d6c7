"""Placing holds (issue 7, deliverable 3): ``POST /api/v1/recordings/{id}/holds``.

The S3 legal hold goes on every stored version before the hold is recorded (R3, R6), so the
storage itself refuses to delete held evidence even when the hold row is gone; S3 failing
means no hold (503); a recording past its deadline (R2) or deleted (R5) cannot be held. Real
stack: uploads through tus, the broker, Postgres, moto's S3 endpoint, review over HTTP.
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest
from minio.error import S3Error

from bwc.devstack.stack import Stack
from bwc.events import Topic
from tests.fixtures.clients import auth, mint, object_store
from tests.fixtures.events import deleted_event, hold_placed_event, ingested_event
from tests.fixtures.gate import s3_gate
from tests.fixtures.holds import (
    HOLD,
    legal_holds,
    outbox_entries,
    place_hold,
    publish,
    release_hold,
    stored_versions,
)
from tests.fixtures.review import uploaded_recording, wait_in_review
from tests.fixtures.services import extra_service


async def _standing(db: asyncpg.Connection, rid: uuid.UUID) -> int:
    count: int = await db.fetchval(
        "SELECT count(*) FROM review.holds WHERE recording_id = $1 AND released_at IS NULL", rid)
    return count


async def test_a_held_object_cannot_be_deleted_even_with_the_hold_row_gone(
    stack: Stack, http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """R6, the storage barrier: the hold is placed through the API on a real upload; its row
    is then deleted from review's schema behind review's back, and S3 still refuses to delete
    the object's version: the bytes are all there."""
    data = os.urandom(64 * 1024)
    rid = await uploaded_recording(http, stack, db, data)
    placed = await place_hold(http, stack, rid)
    assert placed.status_code == 201, placed.text
    hold = placed.json()
    assert (hold["recording_id"], hold["reason"], hold["case_reference"], hold["placed_by"],
            hold["released_at"]) == (str(rid), "criminal", HOLD["case_reference"], "rita", None)
    store = object_store(stack)
    [(key, version)] = await stored_versions(store, rid)
    assert await store.legal_hold_enabled(key, version)

    await db.execute("DELETE FROM review.holds WHERE recording_id = $1", rid)
    with pytest.raises(S3Error):
        await store.delete_version(key, version)
    assert await stored_versions(store, rid) == [(key, version)]
    assert await store.read_bytes(key, len(data), version) == data


async def test_every_stored_version_is_held_and_the_entries_say_which(
    stack: Stack, http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """Every version of the recording's key and of its derived files (R5's list of what a
    recording is) takes the legal hold; the event and the audit entry are in review's outbox,
    the audit entry naming the hold, reason, case reference and versions — no justification
    (R7: entries outlive the recording)."""
    rid = await uploaded_recording(http, stack, db, os.urandom(4096))
    store = object_store(stack)
    key = f"recordings/{rid}"
    older = await store.put_bytes(key, b"an earlier version, written by a retried completion")
    derived = await store.put_bytes(f"derived/{rid}/thumbnail.jpg", b"jpeg")
    # A delete marker holds no bytes and takes no legal hold; a key that merely starts with
    # the recording's key is another object.
    await asyncio.to_thread(store.client.remove_object, store.bucket,
                            f"derived/{rid}/thumbnail.jpg")
    sidecar = await store.put_bytes(f"{key}.sidecar", b"not this recording's object")
    placed = await place_hold(http, stack, rid)
    assert placed.status_code == 201, placed.text
    versions = await stored_versions(store, rid)
    assert len(versions) == 3 and (key, older) in versions
    assert (f"derived/{rid}/thumbnail.jpg", derived) in versions
    assert await legal_holds(store, rid) == [True, True, True]
    assert sidecar and not await store.legal_hold_enabled(f"{key}.sidecar", sidecar)
    await store.delete_version(f"{key}.sidecar", sidecar)

    [event] = [e for e in await outbox_entries(db, rid, Topic.RECORDINGS)
               if e["type"] == "recording.hold_placed"]
    assert event["data"]["hold_id"] == placed.json()["id"]
    [entry] = [e["data"] for e in await outbox_entries(db, rid, Topic.AUDIT)
               if e["data"]["action"] == "hold_placed"]
    assert (entry["actor"], entry["role"], entry["source_service"]) == (
        "rita", "reviewer", "review")
    assert entry["details"]["hold_id"] == placed.json()["id"]
    assert entry["details"]["case_reference"] == HOLD["case_reference"]
    assert sorted((v["key"], v["version_id"]) for v in entry["details"]["versions_held"]) == \
        sorted(versions)
    assert entry["purpose"] and HOLD["justification"] not in str(entry)


async def test_a_hold_on_a_recording_past_its_deadline_is_refused(
    stack: Stack, http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """R2: the review had to happen within the two weeks; past the deadline without a hold the
    recording is due for deletion and cannot be held any more (409, saying when it was)."""
    rid = uuid.uuid4()
    deadline = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    await publish(stack, ingested_event(rid, delete_after=deadline))
    await wait_in_review(db, rid)
    refused = await place_hold(http, stack, rid)
    assert refused.status_code == 409, refused.text
    problem = refused.json()
    assert problem["rule"] == "R2" and "two weeks" in problem["detail"]
    assert datetime.fromisoformat(problem["delete_after"]) == deadline
    assert await _standing(db, rid) == 0


async def test_a_recording_already_held_may_get_a_further_hold_past_its_deadline(
    stack: Stack, http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """A held recording is lawfully kept (R3) beyond its deadline; a second proceeding adds
    its own hold. The version recording.ingested names must be the stored one: a wrong one is
    503 (the object is not where the event says) and nothing is held."""
    rid, wrong = uuid.uuid4(), uuid.uuid4()
    store = object_store(stack)
    past = datetime.now(UTC) - timedelta(minutes=1)
    version = await store.put_bytes(f"recordings/{rid}", b"bytes")
    other = await store.put_bytes(f"recordings/{wrong}", b"bytes")
    assert version and other
    await publish(stack,
                  ingested_event(rid, object_version_id=version, delete_after=past),
                  hold_placed_event(rid, placed_by="ralf"),
                  ingested_event(wrong, object_version_id="not-" + other, delete_after=past),
                  hold_placed_event(wrong, placed_by="ralf"))
    for recording in (rid, wrong):
        await wait_in_review(db, recording)
        for _ in range(300):
            if await _standing(db, recording) == 1:
                break
            await asyncio.sleep(0.1)
    placed = await place_hold(http, stack, rid, reason="data_subject_request")
    assert placed.status_code == 201, placed.text
    assert await _standing(db, rid) == 2
    assert await legal_holds(store, rid) == [True]

    refused = await place_hold(http, stack, wrong)
    assert refused.status_code == 503, refused.text
    assert refused.headers["Retry-After"]
    assert "not where" in refused.json()["detail"]
    assert await _standing(db, wrong) == 1
    assert await legal_holds(store, wrong) == [False]
    await store.delete_version(f"recordings/{wrong}", other)


async def test_unknown_404_deleted_410_and_bad_input_400(
    stack: Stack, http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    rid = uuid.uuid4()
    await publish(stack, ingested_event(rid), deleted_event(rid))
    for _ in range(300):
        if await db.fetchval("SELECT 1 FROM review.deleted_recordings WHERE id = $1", rid):
            break
        await asyncio.sleep(0.1)
    gone = await place_hold(http, stack, rid)
    assert gone.status_code == 410, gone.text
    assert "R5" in gone.json()["detail"]
    unknown = await place_hold(http, stack, uuid.uuid4())
    assert unknown.status_code == 404, unknown.text

    for body, field in (({"reason": "curiosity"}, "reason"),
                        ({"case_reference": "  "}, "case_reference"),
                        ({"case_reference": ""}, "case_reference"),
                        ({"case_reference": "AZ\u202e 12"}, "case_reference"),
                        ({"justification": " \n"}, "justification")):
        bad = await place_hold(http, stack, uuid.uuid4(), **body)
        assert bad.status_code == 400, (body, bad.text)
        assert [e["field"] for e in bad.json()["errors"]] == [field], bad.text
    missing = await http.post(f"{stack.url('review')}/api/v1/recordings/{uuid.uuid4()}/holds",
                              json={"reason": "owi"},
                              headers=auth(mint(stack, "reviewer", "rita")))
    assert missing.status_code == 400
    assert {e["field"] for e in missing.json()["errors"]} == {"case_reference", "justification"}


async def test_only_a_reviewer_places_holds(
    stack: Stack, http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    rid = await uploaded_recording(http, stack, db, os.urandom(1024))
    for role in ("supervisor", "auditor", "admin", "officer", "device"):
        refused = await place_hold(http, stack, rid, bearer=mint(stack, role, f"{role}-1"))
        assert refused.status_code == 403, (role, refused.text)
    assert await _standing(db, rid) == 0
    assert await legal_holds(object_store(stack), rid) == [False]


async def test_s3_unreachable_is_503_and_no_hold_is_stored(
    stack: Stack, http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """A second review process reaches S3 through a gate. Gate closed: 503 with Retry-After,
    no hold row, no event, no legal hold. Gate open again: the same request places the hold
    (so the refusal was S3's doing)."""
    rid = await uploaded_recording(http, stack, db, os.urandom(4096))
    store = object_store(stack)
    with s3_gate(stack.env["BWC_S3_ENDPOINT"]) as gate:
        async with extra_service(stack, "review", env={"BWC_S3_ENDPOINT": gate.url}) as review:
            gate.open = False
            gate.close_all()
            refused = await place_hold(http, stack, rid, base_url=review.url)
            assert refused.status_code == 503, refused.text
            assert refused.headers["Retry-After"]
            assert refused.json()["title"] == "Object storage unavailable"
            assert await _standing(db, rid) == 0
            assert await outbox_entries(db, rid, Topic.RECORDINGS) == []
            assert await legal_holds(store, rid) == [False]
            gate.open = True
            placed = await place_hold(http, stack, rid, base_url=review.url)
            assert placed.status_code == 201, placed.text
    assert await _standing(db, rid) == 1
    assert await legal_holds(store, rid) == [True]


async def test_s3_refusing_part_of_the_hold_is_503_and_what_was_set_is_cleared_again(
    stack: Stack, http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """S3 holds the recording's object but refuses the legal hold of its derived file: 503,
    no hold stored, and the legal hold already set on the object is cleared again (no hold
    stands), so the recording's deadline still applies (R2)."""
    rid = await uploaded_recording(http, stack, db, os.urandom(4096))
    store = object_store(stack)
    await store.put_bytes(f"derived/{rid}/preview.mp4", b"preview")
    with s3_gate(stack.env["BWC_S3_ENDPOINT"]) as gate:
        async with extra_service(stack, "review", env={"BWC_S3_ENDPOINT": gate.url}) as review:
            gate.fail = re.compile(rb"^PUT /recordings/derived/[^ ]*legal-hold")
            refused = await place_hold(http, stack, rid, base_url=review.url)
            assert refused.status_code == 503, refused.text
            assert gate.matched.is_set()
    assert await _standing(db, rid) == 0
    assert await legal_holds(store, rid) == [False, False]


async def test_a_placement_that_cannot_commit_clears_the_legal_hold_again(
    stack: Stack, http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """The legal hold was set, then the transaction failed (its event cannot be written into
    the outbox): 503, no hold row, and as no hold stands the legal hold is cleared again."""
    rid = await uploaded_recording(http, stack, db, os.urandom(4096))
    constraint = f"test_refuse_{rid.hex}"
    await db.execute(f"ALTER TABLE review.outbox ADD CONSTRAINT {constraint}"
                     f" CHECK (key <> '{rid}') NOT VALID")
    try:
        refused = await place_hold(http, stack, rid)
    finally:
        await db.execute(f"ALTER TABLE review.outbox DROP CONSTRAINT {constraint}")
    assert refused.status_code == 503, refused.text
    assert await _standing(db, rid) == 0
    assert await legal_holds(object_store(stack), rid) == [False]


async def test_two_holds_placed_at_once_both_stand_and_the_object_stays_held(
    stack: Stack, http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """Placements on one recording take turns on its row lock: both succeed, both stand, and
    releasing one of them leaves the legal hold on (R3)."""
    rid = await uploaded_recording(http, stack, db, os.urandom(4096))
    first, second = await asyncio.gather(
        place_hold(http, stack, rid, bearer=mint(stack, "reviewer", "rita")),
        place_hold(http, stack, rid, bearer=mint(stack, "reviewer", "ralf"), reason="owi",
                   case_reference="OWi 7/26"))
    assert (first.status_code, second.status_code) == (201, 201), (first.text, second.text)
    assert await _standing(db, rid) == 2
    store = object_store(stack)
    assert await legal_holds(store, rid) == [True]
    released = await release_hold(http, stack, first.json()["id"])
    assert released.status_code == 200, released.text
    assert released.json()["recording_held"] is True
    assert await legal_holds(store, rid) == [True]
