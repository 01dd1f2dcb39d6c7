"""Releasing holds (issue 7, deliverable 4): ``POST /api/v1/holds/{hold_id}/release``.

Four eyes (R4): only a supervisor who did not place the hold releases it, whatever roles the
placer holds. The last release of a recording clears the S3 legal hold on every version (R6)
and the recording is subject to its deadline again (R2); the catalogue follows through
``recordings.v1`` and every change is in the audit chain (R7). Real stack throughout.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import datetime, timedelta

import asyncpg
import httpx

from bwc.devstack.stack import Stack
from bwc.events import Topic
from services.review import view
from tests.fixtures.audit import wait_for_audit
from tests.fixtures.catalog import deliver
from tests.fixtures.clients import auth, mint, object_store
from tests.fixtures.events import hold_placed_event, ingested_event
from tests.fixtures.gate import s3_gate
from tests.fixtures.holds import (
    catalog_until,
    legal_holds,
    outbox_entries,
    place_hold,
    release_hold,
    token,
)
from tests.fixtures.review import (
    review_consumer,
    review_database,
    review_settings,
    uploaded_recording,
)
from tests.fixtures.services import extra_service


async def _hold(http: httpx.AsyncClient, stack: Stack, rid: uuid.UUID, **kwargs: str) -> str:
    placed = await place_hold(http, stack, rid, **kwargs)
    assert placed.status_code == 201, placed.text
    hold_id: str = placed.json()["id"]
    return hold_id


async def test_four_eyes_the_placer_cannot_release_even_as_supervisor(
    stack: Stack, http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """R4: the placer holds both roles and is still refused (403 citing R4); a reviewer is
    refused (403); another supervisor releases; a second release is 409. After that last
    release S3 no longer holds any version of the recording."""
    rid = await uploaded_recording(http, stack, db, os.urandom(8192))
    petra = token(stack, "petra", "reviewer", "supervisor")
    hold_id = await _hold(http, stack, rid, bearer=petra)
    store = object_store(stack)
    assert await legal_holds(store, rid) == [True]

    own = await release_hold(http, stack, hold_id, bearer=petra)
    assert own.status_code == 403, own.text
    assert own.json()["rule"] == "R4" and "R4" in own.json()["detail"]
    reviewer = await release_hold(http, stack, hold_id, bearer=mint(stack, "reviewer", "rita"))
    assert reviewer.status_code == 403, reviewer.text
    assert await legal_holds(store, rid) == [True]
    assert await db.fetchval("SELECT released_at FROM review.holds WHERE id = $1",
                             uuid.UUID(hold_id)) is None

    released = await release_hold(http, stack, hold_id, bearer=mint(stack, "supervisor", "sam"))
    assert released.status_code == 200, released.text
    body = released.json()
    assert (body["id"], body["placed_by"], body["released_by"], body["recording_held"]) == (
        hold_id, "petra", "sam", False)
    assert body["release_justification"] == "proceedings closed"
    deadline = await db.fetchval("SELECT delete_after FROM review.recordings WHERE id = $1", rid)
    assert datetime.fromisoformat(body["delete_after"]) == deadline
    assert await legal_holds(store, rid) == [False]

    again = await release_hold(http, stack, hold_id, bearer=mint(stack, "supervisor", "sven"))
    assert again.status_code == 409, again.text
    assert "sam" in again.json()["detail"]


async def test_releasing_one_of_several_holds_keeps_the_legal_hold_the_last_clears_it(
    stack: Stack, http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """R3: a recording is held while any hold stands; the legal hold stays on every version
    (the object and a derived file) until the last release."""
    rid = await uploaded_recording(http, stack, db, os.urandom(4096))
    store = object_store(stack)
    await store.put_bytes(f"derived/{rid}/thumbnail.jpg", b"jpeg")
    first = await _hold(http, stack, rid)
    second = await _hold(http, stack, rid, reason="danger", case_reference="Gefahr 3/26")
    assert await legal_holds(store, rid) == [True, True]

    one = await release_hold(http, stack, first)
    assert one.status_code == 200, one.text
    assert one.json()["recording_held"] is True
    assert await legal_holds(store, rid) == [True, True]
    last = await release_hold(http, stack, second)
    assert last.status_code == 200, last.text
    assert last.json()["recording_held"] is False
    assert await legal_holds(store, rid) == [False, False]


async def test_the_catalogue_follows_and_every_change_is_in_the_audit_chain(
    stack: Stack, http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """The events go through review's outbox and the broker: the catalogue shows the
    recording ``held`` with its hold, then ``released``; the ``hold_placed`` and
    ``hold_released`` entries are in review's outbox, then in the catalogue's audit chain with
    actor and purpose, and the chain verifies (R7)."""
    rid = await uploaded_recording(http, stack, db, os.urandom(4096))
    hold_id = await _hold(http, stack, rid)
    held = await catalog_until(http, stack, rid, "held")
    [shown] = held["holds"]
    assert (shown["id"], shown["reason"], shown["placed_by"]) == (hold_id, "criminal", "rita")
    assert (await release_hold(http, stack, hold_id)).status_code == 200
    released = await catalog_until(http, stack, rid, "released")
    assert released["holds"][0]["released_by"] == "sam"

    types = [e["type"] for e in await outbox_entries(db, rid, Topic.RECORDINGS)]
    assert types == ["recording.hold_placed", "recording.hold_released"]
    actions = [e["data"]["action"] for e in await outbox_entries(db, rid, Topic.AUDIT)]
    assert actions == ["hold_placed", "hold_released"]

    entries = await wait_for_audit(http, stack, count=1, recording_id=str(rid),
                                   action="hold_released")
    entries += await wait_for_audit(http, stack, count=1, recording_id=str(rid),
                                    action="hold_placed")
    by_action = {e["action"]: e["event"]["data"] for e in entries}
    assert (by_action["hold_placed"]["actor"], by_action["hold_released"]["actor"]) == (
        "rita", "sam")
    assert by_action["hold_released"]["role"] == "supervisor"
    assert all(data["purpose"] for data in by_action.values())
    assert by_action["hold_released"]["details"]["legal_hold_cleared"] is True
    verdict = (await http.get(f"{stack.url('catalog')}/api/v1/audit/verify",
                              headers=auth(mint(stack, "auditor", "audrey")))).json()
    assert verdict["ok"] is True, verdict


async def test_s3_unreachable_on_the_last_release_is_503_and_the_hold_stays(
    stack: Stack, http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """Clearing the legal hold comes first: S3 unreachable → 503 + Retry-After, the hold
    still stands and S3 still holds the object; with S3 back the release goes through."""
    rid = await uploaded_recording(http, stack, db, os.urandom(4096))
    hold_id = await _hold(http, stack, rid)
    store = object_store(stack)
    with s3_gate(stack.env["BWC_S3_ENDPOINT"]) as gate:
        async with extra_service(stack, "review", env={"BWC_S3_ENDPOINT": gate.url}) as review:
            gate.open = False
            gate.close_all()
            refused = await http.post(f"{review.url}/api/v1/holds/{hold_id}/release",
                                      json={"justification": "closed"},
                                      headers=auth(mint(stack, "supervisor", "sam")))
            assert refused.status_code == 503, refused.text
            assert refused.headers["Retry-After"]
            assert await db.fetchval("SELECT released_at FROM review.holds WHERE id = $1",
                                     uuid.UUID(hold_id)) is None
            assert await legal_holds(store, rid) == [True]
            gate.open = True
            done = await http.post(f"{review.url}/api/v1/holds/{hold_id}/release",
                                   json={"justification": "closed"},
                                   headers=auth(mint(stack, "supervisor", "sam")))
            assert done.status_code == 200, done.text
    assert await legal_holds(store, rid) == [False]


async def test_a_release_that_cannot_commit_sets_the_legal_hold_again(
    stack: Stack, http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """The legal hold was cleared, then the transaction failed (its event cannot be written
    into the outbox): the hold still stands, so the legal hold is set again (R3) and the
    answer is 503."""
    rid = await uploaded_recording(http, stack, db, os.urandom(4096))
    hold_id = await _hold(http, stack, rid)
    constraint = f"test_refuse_{rid.hex}"
    await db.execute(f"ALTER TABLE review.outbox ADD CONSTRAINT {constraint}"
                     f" CHECK (key <> '{rid}') NOT VALID")
    try:
        refused = await release_hold(http, stack, hold_id)
    finally:
        await db.execute(f"ALTER TABLE review.outbox DROP CONSTRAINT {constraint}")
    assert refused.status_code == 503, refused.text
    assert await db.fetchval("SELECT released_at FROM review.holds WHERE id = $1",
                             uuid.UUID(hold_id)) is None
    assert await legal_holds(object_store(stack), rid) == [True]


async def test_unknown_hold_404_and_bad_input_400(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    unknown = await release_hold(http, stack, uuid.uuid4())
    assert unknown.status_code == 404, unknown.text
    assert unknown.json()["field"] == "hold_id"
    for justification in (" ", "", "x" * 2001):
        bad = await release_hold(http, stack, uuid.uuid4(), justification=justification)
        assert bad.status_code == 400, bad.text
        assert [e["field"] for e in bad.json()["errors"]] == ["justification"]
    not_an_id = await http.post(f"{stack.url('review')}/api/v1/holds/nope/release",
                                json={"justification": "x"},
                                headers=auth(mint(stack, "supervisor", "sam")))
    assert not_an_id.status_code == 400


async def test_the_locked_recording_counts_holds_committed_while_it_waited(
    stack: Stack
) -> None:
    """Regression (shared ``repository.get_recording``): a release waiting for the recording's
    lock while a placement commits must count the new hold, or it takes itself for the last
    one and clears the legal hold under a standing hold (R3, R6). The count used to come from
    the statement's snapshot, taken before the wait."""
    async with review_database(stack) as pool:
        consumer = review_consumer(pool, review_settings(stack,
                                                         retention_period=timedelta(days=14)))
        rid = uuid.uuid4()
        await deliver(consumer, ingested_event(rid), hold_placed_event(rid))
        async with pool.acquire() as placing, pool.acquire() as releasing:
            tx = placing.transaction()
            await tx.start()
            await view.lookup(placing, rid, for_update=True)
            waiter_pid = releasing.get_server_pid()

            async def release_side() -> view.Lookup:
                async with releasing.transaction():
                    return await view.lookup(releasing, rid, for_update=True)

            waiting = asyncio.create_task(release_side())
            for _ in range(300):  # until the release is blocked on the row lock
                if await placing.fetchval(
                        "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1",
                        waiter_pid):
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the second lookup never waited for the lock")
            await placing.execute(
                "INSERT INTO review.holds (id, recording_id, reason, case_reference,"
                " justification, placed_by, placed_at) VALUES ($1, $2, 'owi', 'AZ 1', 'x',"
                " 'ralf', now())", uuid.uuid4(), rid)
            await tx.commit()
            found = await asyncio.wait_for(waiting, timeout=30)
    assert found.recording is not None and found.recording.standing_holds == 2
