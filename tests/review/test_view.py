"""What every review endpoint answers about a recording's availability (``services/review/
view.py``), against real Postgres: unknown 404, deleted 410, past its deadline without a hold
410 (R2), held past its deadline still available (R3); and the arrival wait that lets a
recording the catalogue already shows be acted on at once."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from bwc.consumer import EventConsumer
from bwc.devstack.stack import Stack
from bwc.problems import Problem
from services.review import view
from tests.fixtures.catalog import deliver
from tests.fixtures.events import deleted_event, hold_placed_event, ingested_event
from tests.fixtures.review import review_consumer, review_database, review_settings

NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
async def pool(stack: Stack) -> AsyncIterator[asyncpg.Pool]:
    async with review_database(stack) as pool:
        yield pool


@pytest.fixture(scope="module")
def consumer(pool: asyncpg.Pool, stack: Stack) -> EventConsumer:
    return review_consumer(pool, review_settings(stack))


async def _lookup(pool: asyncpg.Pool, rid: uuid.UUID) -> view.Lookup:
    async with pool.acquire() as conn:
        return await view.lookup(conn, rid)


def _status(call: object) -> int:
    with pytest.raises(Problem) as raised:
        call()  # type: ignore[operator]
    return raised.value.status


async def test_unknown_and_deleted(pool: asyncpg.Pool, consumer: EventConsumer) -> None:
    unknown = await _lookup(pool, uuid.uuid4())
    assert unknown.result == "unknown" and _status(unknown.present) == 404
    rid = uuid.uuid4()
    await deliver(consumer, ingested_event(rid), deleted_event(rid))
    deleted = await _lookup(pool, rid)
    assert deleted.result == "deleted" and _status(deleted.present) == 410


async def test_past_its_deadline_only_a_hold_keeps_it_available(
    pool: asyncpg.Pool, consumer: EventConsumer
) -> None:
    """R2: past the deadline without a hold the recording is due for deletion (410); R3: a
    standing hold keeps it (available)."""
    expired, held = uuid.uuid4(), uuid.uuid4()
    await deliver(consumer,
                  ingested_event(expired, delete_after=NOW - timedelta(minutes=1)),
                  ingested_event(held, delete_after=NOW - timedelta(minutes=1)),
                  hold_placed_event(held, uuid.uuid4()))
    found = await _lookup(pool, expired)
    assert found.present().id == expired
    assert _status(lambda: found.available(datetime.now(UTC))) == 410
    kept = await _lookup(pool, held)
    assert kept.available(datetime.now(UTC)).standing_holds == 1


async def test_the_arrival_wait_returns_as_soon_as_the_recording_arrives(
    pool: asyncpg.Pool, consumer: EventConsumer
) -> None:
    rid = uuid.uuid4()

    async def arrive_later() -> None:
        await asyncio.sleep(0.5)
        await deliver(consumer, ingested_event(rid))

    started = time.monotonic()
    await asyncio.gather(view.wait_for_arrival(pool, rid, wait=30), arrive_later())
    assert time.monotonic() - started < 20, "waited for the timeout, not for the recording"
    assert (await _lookup(pool, rid)).result == "ok"


async def test_the_arrival_wait_gives_up_after_its_time(pool: asyncpg.Pool) -> None:
    started = time.monotonic()
    await view.wait_for_arrival(pool, uuid.uuid4(), wait=0.3)
    assert time.monotonic() - started >= 0.3
    assert (await _lookup(pool, uuid.uuid4())).result == "unknown"
