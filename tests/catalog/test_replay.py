"""Issue 6: a replay of recordings.v1 from offset 0 into an empty catalogue gives the identical
catalogue, and so does the same history with duplicates and reordering (holds, reviews and
deletions before their recording.ingested), over the real broker.

A realistic history of eight recordings goes to a fresh topic and is consumed into database A;
a second consumer group replays the topic from offset 0 into an empty database B; a third
consumes a copy of the history with every recording's events shuffled and a third of them
duplicated into database C. Every table of the three catalogue schemas must be equal, but for
the bookkeeping columns (tests/fixtures/catalog.py ``BOOKKEEPING``) and, for C, which topic
delivered an event."""

from __future__ import annotations

import asyncio
import contextlib
import random
import types
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
from aiokafka import AIOKafkaProducer

from bwc.devstack.stack import Stack
from bwc.events import CloudEvent, DeletionReason, HoldReason
from services.catalog.app import SCHEMA
from services.catalog.config import CatalogSettings
from services.catalog.consumers import recordings_consumer
from tests.fixtures.catalog import catalog_database, catalog_settings, snapshot
from tests.fixtures.events import (
    deleted_event,
    encoded,
    hold_placed_event,
    hold_released_event,
    ingested_event,
    reviewed_event,
)


def history(now: datetime) -> tuple[list[CloudEvent], dict[uuid.UUID, str]]:
    """Eight recordings' events in the order the producers would publish them, and the status
    each recording ends in."""
    t = now - timedelta(days=15)

    def m(minutes: float) -> datetime:
        return t + timedelta(minutes=minutes)

    r = [uuid.uuid4() for _ in range(8)]
    a, b, c, d, e = (uuid.uuid4() for _ in range(5))

    def ingested(i: int, minute: float, **fields: object) -> CloudEvent:
        return ingested_event(
            r[i], recorded_at=m(minute), ended_at=m(minute + 3), uploaded_at=m(minute + 30),
            delete_after=m(minute) + timedelta(days=14), filename=f"clip-{i}.mp4",
            location=f"51.2{i},6.7{i}", trigger_reason=f"incident {i}", officer_id=f"o-{i % 3}",
            device_id=f"cam-{i % 2}", size_bytes=1000 * (i + 1), **fields)

    events = [
        ingested(0, 0), ingested(1, 5, in_home=True), ingested(2, 10),
        # r3: the review service's hold overtakes the ingest relay, which was slow.
        hold_placed_event(r[3], d, placed_at=m(50), reason=HoldReason.DANGER),
        ingested(3, 15, announced=False, imminent_danger=True),
        ingested(4, 20), ingested(5, 25), ingested(7, 35),
        reviewed_event(r[0], reviewed_at=m(60), note="nothing to see"),
        hold_placed_event(r[1], a, placed_at=m(70)),
        hold_placed_event(r[2], b, placed_at=m(75), reason=HoldReason.CRIMINAL),
        hold_placed_event(r[2], c, placed_at=m(76), reason=HoldReason.DATA_SUBJECT_REQUEST),
        reviewed_event(r[4], reviewed_at=m(80)),
        hold_placed_event(r[4], e, placed_at=m(81), case_reference="StA 7 Js 1/26"),
        reviewed_event(r[4], reviewed_at=m(82), reviewer="rolf"),
        hold_released_event(r[2], b, released_at=m(200)),
        hold_released_event(r[2], c, released_at=m(201), released_by="sven"),
        deleted_event(r[0], deleted_at=m(14 * 24 * 60)),
        deleted_event(r[7], deleted_at=m(14 * 24 * 60 + 35)),
        deleted_event(r[2], deleted_at=m(14 * 24 * 60 + 40),
                      reason=DeletionReason.HOLD_RELEASED_AFTER_DEADLINE),
        # r6 was never announced: the safety-net scan deleted it; its deletion waits.
        deleted_event(r[6], deleted_at=m(14 * 24 * 60 + 50), reason=DeletionReason.SAFETY_NET,
                      sha256=None, size_bytes=None),
        # r7: a hold placed just after the deletion (two producers racing) is recorded emptied.
        hold_placed_event(r[7], placed_at=m(14 * 24 * 60 + 36)),
    ]
    statuses = {r[0]: "deleted", r[1]: "held", r[2]: "deleted", r[3]: "held", r[4]: "held",
                r[5]: "pending_review", r[7]: "deleted"}
    return events, statuses


def shuffled_with_duplicates(events: list[CloudEvent], rng: random.Random) -> list[CloudEvent]:
    """Each recording's events in a random order (the key keeps that order on the topic),
    a third of them twice, the recordings interleaved."""
    by_key: dict[str, list[CloudEvent]] = {}
    for event in events + rng.sample(events, len(events) // 3):
        by_key.setdefault(event.subject, []).append(event)
    queues = [rng.sample(evs, len(evs)) for evs in by_key.values()]
    out: list[CloudEvent] = []
    while any(queues):
        queue = rng.choice([q for q in queues if q])
        out.append(queue.pop(0))
    return out


async def _publish(settings: CatalogSettings, topic: str, events: list[CloudEvent]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for event in events:
            await producer.send_and_wait(topic, key=event.subject.encode(), value=encoded(event))
    finally:
        await producer.stop()


@contextlib.asynccontextmanager
async def consuming(
    pool: asyncpg.Pool, settings: CatalogSettings, topic: str
) -> AsyncIterator[None]:
    """The catalogue's own consumer on ``topic`` in a new consumer group, from offset 0."""
    consumer = recordings_consumer(
        pool, settings, schema=SCHEMA, topics=[types.SimpleNamespace(value=topic)],  # type: ignore[list-item]
        group_id=f"replay-{uuid.uuid4().hex[:8]}")
    task = asyncio.create_task(consumer.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _until_applied(pool: asyncpg.Pool, event_ids: set[str], task_timeout: float) -> None:
    for _ in range(int(task_timeout * 5)):
        applied = {r["event_id"] for r in await pool.fetch(
            "SELECT event_id FROM catalog.processed_events")}
        if applied >= event_ids:
            return
        assert not await pool.fetchval("SELECT count(*) FROM catalog.dead_letters")
        await asyncio.sleep(0.2)
    raise AssertionError(f"{len(event_ids - applied)} events not applied")


async def test_a_replay_from_offset_0_with_duplicates_and_reordering_is_identical(
    stack: Stack,
) -> None:
    settings = catalog_settings(stack)
    events, statuses = history(datetime.now(UTC).replace(microsecond=0))
    ids = {e.id for e in events}
    topic, reordered = (f"recordings-replay-{uuid.uuid4().hex[:8]}" for _ in range(2))
    async with (catalog_database(stack) as a, catalog_database(stack) as b,
                catalog_database(stack) as c):
        await _publish(settings, topic, events)
        async with consuming(a, settings, topic):
            await _until_applied(a, ids, 60)
        shown = {r["id"]: r["status"] for r in await a.fetch(
            "SELECT id, status FROM catalog.recordings")}
        assert shown == statuses
        assert await a.fetchval("SELECT count(*) FROM catalog.pending_events") == 1  # r6

        await _publish(settings, reordered, shuffled_with_duplicates(events, random.Random(6)))
        async with consuming(b, settings, topic), consuming(c, settings, reordered):
            await asyncio.gather(_until_applied(b, ids, 60), _until_applied(c, ids, 60))
            await asyncio.sleep(1)  # duplicates behind the last new event are applied too

        expected = await snapshot(a)
        assert await snapshot(b) == expected
        for processed in (expected, snap_c := await snapshot(c)):
            processed["processed_events"] = [row[:2] for row in processed["processed_events"]]
        assert snap_c == expected
        assert expected["holds"] and expected["reviews"] and expected["pending_events"]
