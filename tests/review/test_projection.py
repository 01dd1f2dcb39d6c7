"""Review's own view of recordings.v1 (issue 7, deliverable 1): what it keeps to act on a
recording, the deadline it trusts (R2), and what a deletion leaves (R5). Against real Postgres
with the consumer's handlers; the last test goes through the whole stack (tus → S3 → Kafka)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest

from bwc.consumer import EventConsumer
from bwc.devstack.stack import Stack
from bwc.events import DeletionReason
from tests.fixtures.catalog import deliver
from tests.fixtures.events import (
    deleted_event,
    hold_placed_event,
    hold_released_event,
    ingested_event,
    reviewed_event,
)
from tests.fixtures.review import (
    review_consumer,
    review_database,
    review_settings,
    uploaded_recording,
)

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
async def pool(stack: Stack) -> AsyncIterator[asyncpg.Pool]:
    async with review_database(stack) as pool:
        yield pool


@pytest.fixture(scope="module")
def consumer(pool: asyncpg.Pool, stack: Stack) -> EventConsumer:
    return review_consumer(pool, review_settings(stack, retention_period=timedelta(days=7)))


async def test_the_view_keeps_what_review_acts_on(
    pool: asyncpg.Pool, consumer: EventConsumer
) -> None:
    rid = uuid.uuid4()
    await deliver(consumer, ingested_event(
        rid, recorded_at=NOW - timedelta(hours=2), uploaded_at=NOW, in_home=True,
        object_version_id="v-1", size_bytes=4096, sha256="b" * 64,
        delete_after=NOW + timedelta(days=13)))
    row = await pool.fetchrow("SELECT * FROM review.recordings WHERE id = $1", rid)
    assert row is not None
    assert (row["object_key"], row["object_version_id"], row["size_bytes"], row["sha256"],
            row["in_home"]) == (f"recordings/{rid}", "v-1", 4096, "b" * 64, True)
    # R2: the deadline is never later than this deployment's own period (7 days here), even
    # when the producer computed a later one.
    assert row["delete_after"] == NOW - timedelta(hours=2) + timedelta(days=7)


async def test_holds_and_reviews_follow_the_events_and_duplicates_change_nothing(
    pool: asyncpg.Pool, consumer: EventConsumer
) -> None:
    rid, hold = uuid.uuid4(), uuid.uuid4()
    events = [ingested_event(rid), hold_placed_event(rid, hold), reviewed_event(rid)]
    await deliver(consumer, *events, *events)
    standing = await pool.fetchval(
        "SELECT count(*) FROM review.holds WHERE recording_id = $1 AND released_at IS NULL", rid)
    assert standing == 1
    assert await pool.fetchval(
        "SELECT count(*) FROM review.reviews WHERE recording_id = $1", rid) == 1
    await deliver(consumer, hold_released_event(rid, hold))
    assert await pool.fetchval(
        "SELECT released_by FROM review.holds WHERE id = $1", hold) == "sam"


async def test_a_deletion_leaves_only_a_tombstone_and_nothing_comes_back(
    pool: asyncpg.Pool, consumer: EventConsumer
) -> None:
    """R5: the row, its holds, reviews and confirmations go; a late ``recording.ingested``
    (a replay, a redelivery) does not bring the recording back."""
    rid = uuid.uuid4()
    ingested = ingested_event(rid, trigger_reason="shouting in the stairwell")
    await deliver(consumer, ingested, hold_placed_event(rid, uuid.uuid4()), reviewed_event(rid))
    await pool.execute(
        "INSERT INTO review.judicial_confirmations VALUES ($1, 'AZ 1', 'AG Köln', now(),"
        " 'sven', now())", rid)
    await deliver(consumer, deleted_event(rid, reason=DeletionReason.DEADLINE))
    for table, column in (("recordings", "id"), ("holds", "recording_id"),
                          ("reviews", "recording_id"),
                          ("judicial_confirmations", "recording_id")):
        assert await pool.fetchval(
            f"SELECT count(*) FROM review.{table} WHERE {column} = $1", rid) == 0, table
    tombstone = await pool.fetchrow("SELECT * FROM review.deleted_recordings WHERE id = $1", rid)
    assert tombstone is not None and tombstone["reason"] == "deadline"
    await deliver(consumer, ingested_event(rid, trigger_reason="shouting in the stairwell"))
    assert await pool.fetchval("SELECT count(*) FROM review.recordings WHERE id = $1", rid) == 0


async def test_a_change_for_an_unknown_recording_is_skipped(
    pool: asyncpg.Pool, consumer: EventConsumer
) -> None:
    rid = uuid.uuid4()
    await deliver(consumer, hold_placed_event(rid, uuid.uuid4()), reviewed_event(rid))
    assert await pool.fetchval("SELECT count(*) FROM review.holds WHERE recording_id = $1",
                               rid) == 0
    assert await pool.fetchval("SELECT count(*) FROM review.dead_letters") == 0


async def test_an_upload_reaches_review_through_the_stack(
    stack: Stack, http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    data = b"review sees this recording" * 100
    rid = await uploaded_recording(http, stack, db, data, in_home="true")
    row = await db.fetchrow("SELECT * FROM review.recordings WHERE id = $1", rid)
    assert row is not None
    assert row["size_bytes"] == len(data) and row["in_home"] is True
    assert row["object_key"] == f"recordings/{rid}" and row["object_version_id"]
