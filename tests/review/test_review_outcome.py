"""Review outcomes (issue 7, deliverable 5): ``POST /api/v1/recordings/{id}/review``.

"Sichtung" without evidence: stored in review's ``reviews`` keyed by its event id, emitted as
``recording.reviewed`` (the catalogue shows ``reviewed``) and audited (R7). A standing hold
contradicts it (409, R3); a recording due for deletion cannot be reviewed any more (410, R2).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from bwc.devstack.stack import Stack
from bwc.events import Topic
from tests.fixtures.clients import auth, mint
from tests.fixtures.events import deleted_event, ingested_event
from tests.fixtures.holds import catalog_until, outbox_entries, place_hold, publish, release_hold
from tests.fixtures.review import uploaded_recording, wait_in_review


async def _review(
    http: httpx.AsyncClient, stack: Stack, rid: uuid.UUID, *, bearer: str | None = None,
    **body: Any,
) -> httpx.Response:
    return await http.post(f"{stack.url('review')}/api/v1/recordings/{rid}/review",
                           json={"outcome": "no_evidence", **body},
                           headers=auth(bearer or mint(stack, "reviewer", "rita")))


async def test_no_evidence_is_stored_emitted_audited_and_shown_by_the_catalogue(
    stack: Stack, http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    rid = await uploaded_recording(http, stack, db, os.urandom(4096))
    note = "person left before the situation escalated"
    reviewed = await _review(http, stack, rid, note=note)
    assert reviewed.status_code == 201, reviewed.text
    body = reviewed.json()
    assert (body["recording_id"], body["outcome"], body["note"], body["reviewer"]) == (
        str(rid), "no_evidence", note, "rita")
    row = await db.fetchrow("SELECT * FROM review.reviews WHERE event_id = $1", body["id"])
    assert row is not None and (row["recording_id"], row["note"]) == (rid, note)

    [event] = await outbox_entries(db, rid, Topic.RECORDINGS)
    assert (event["id"], event["type"]) == (body["id"], "recording.reviewed")
    [entry] = [e["data"] for e in await outbox_entries(db, rid, Topic.AUDIT)]
    assert (entry["action"], entry["actor"], entry["role"]) == ("review", "rita", "reviewer")
    assert entry["details"] == {"review_id": body["id"], "outcome": "no_evidence",
                                "note_given": True}
    assert entry["purpose"] and note not in str(entry)  # R7: no content in the entry
    shown = await catalog_until(http, stack, rid, "reviewed")
    assert shown["first_reviewed_at"] is not None


async def test_a_standing_hold_contradicts_no_evidence(
    stack: Stack, http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """R3: while a hold stands, "no evidence" is refused (409); once a supervisor has
    released it (R4), the review is recorded."""
    rid = await uploaded_recording(http, stack, db, os.urandom(4096))
    placed = await place_hold(http, stack, rid)
    assert placed.status_code == 201, placed.text
    refused = await _review(http, stack, rid)
    assert refused.status_code == 409, refused.text
    assert refused.json()["rule"] == "R3"
    assert await db.fetchval("SELECT count(*) FROM review.reviews WHERE recording_id = $1",
                             rid) == 0
    assert (await release_hold(http, stack, placed.json()["id"])).status_code == 200
    assert (await _review(http, stack, rid)).status_code == 201


async def test_unknown_404_deleted_410_past_deadline_410(
    stack: Stack, http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    deleted, overdue = uuid.uuid4(), uuid.uuid4()
    await publish(stack, ingested_event(deleted), deleted_event(deleted),
                  ingested_event(overdue, delete_after=datetime.now(UTC) - timedelta(minutes=1)))
    await wait_in_review(db, overdue)
    for _ in range(300):
        if await db.fetchval("SELECT 1 FROM review.deleted_recordings WHERE id = $1", deleted):
            break
        await asyncio.sleep(0.1)
    assert (await _review(http, stack, deleted)).status_code == 410
    past = await _review(http, stack, overdue)
    assert past.status_code == 410, past.text
    assert "R2" in past.json()["detail"]
    assert (await _review(http, stack, uuid.uuid4())).status_code == 404
    assert await db.fetchval("SELECT count(*) FROM review.reviews WHERE recording_id = ANY($1)",
                             [deleted, overdue]) == 0


async def test_bad_input_400_and_only_reviewers(
    stack: Stack, http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    rid = uuid.uuid4()
    for body, field in (({"outcome": "evidence"}, "outcome"), ({"outcome": None}, "outcome"),
                        ({"note": "a\u0000b"}, "note"), ({"note": "x" * 2001}, "note")):
        bad = await _review(http, stack, rid, **body)
        assert bad.status_code == 400, (body, bad.text)
        assert [e["field"] for e in bad.json()["errors"]] == [field], bad.text
    for role in ("supervisor", "auditor", "admin", "officer", "device"):
        refused = await _review(http, stack, rid, bearer=mint(stack, role, f"{role}-1"))
        assert refused.status_code == 403, (role, refused.text)
