"""The outbox: published events are kept only briefly, as they carry recording metadata (R5);
one key's events are published in the order their transactions committed."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta

import asyncpg
from aiokafka import AIOKafkaConsumer

from bwc.db import create_pool
from bwc.devstack.stack import Stack
from bwc.events import CloudEvent, Topic
from bwc.kafka import make_producer
from bwc.outbox import OutboxRelay, enqueue
from bwc.settings import CommonSettings


async def test_published_rows_are_purged_after_the_keep_period(
    stack: Stack, db: asyncpg.Connection
) -> None:
    old, recent, pending = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    for event_id, published in ((old, "now() - interval '2 days'"),
                                (recent, "now() - interval '1 hour'"), (pending, "NULL")):
        await db.execute(
            "INSERT INTO ingest.outbox (event_id, topic, key, payload, published_at)"
            f" VALUES ($1, 'recordings.v1', 'k', '{{}}', {published})", event_id)
    pool = await asyncpg.create_pool(stack.env["BWC_DATABASE_URL"], min_size=1, max_size=2)
    try:
        relay = OutboxRelay(pool, schema="ingest", producer_factory=lambda: None,  # type: ignore[arg-type, return-value]
                            keep_published=timedelta(days=1))
        assert await relay.purge_published() >= 1
    finally:
        await pool.close()
    remaining = {r["event_id"] for r in await db.fetch(
        "SELECT event_id FROM ingest.outbox WHERE event_id = ANY($1::uuid[])",
        [old, recent, pending])}
    assert remaining == {recent, pending}


async def test_events_of_one_key_are_published_in_commit_order(stack: Stack) -> None:
    """Issue 5, defect 10: two transactions write events for the same recording; the one that
    allocated its row first commits last. Kafka must still see them in commit order, because
    consumers apply one recording's events in the order they arrive."""
    key = str(uuid.uuid4())
    topic = Topic.RECORDINGS
    first, second = (CloudEvent(source="/tests", type="recording.test", subject=key, data={"n": n})
                     for n in (1, 2))
    pool = await create_pool(stack.env["BWC_DATABASE_URL"], size=4)
    settings = CommonSettings(kafka_bootstrap=stack.env["BWC_KAFKA_BOOTSTRAP"])
    relay = OutboxRelay(pool, schema="ingest",
                        producer_factory=lambda: make_producer(settings, client_id="test"))
    early = await pool.acquire()
    try:
        tx = early.transaction()
        await tx.start()
        await enqueue(early, schema="ingest", topic=topic, key=key, event=first)

        async def later_writer() -> None:
            async with pool.acquire() as conn, conn.transaction():
                await enqueue(conn, schema="ingest", topic=topic, key=key, event=second)

        writer = asyncio.create_task(later_writer())
        await asyncio.sleep(0.5)
        await relay.publish_batch()  # what is committed so far goes out now
        await tx.commit()
        await writer
        while await relay.publish_batch():
            pass
    finally:
        await pool.release(early)
        await relay.close()
        await pool.close()

    consumer = AIOKafkaConsumer(topic.value, bootstrap_servers=stack.env["BWC_KAFKA_BOOTSTRAP"],
                                auto_offset_reset="earliest", group_id=None)
    await consumer.start()
    try:
        seen: list[str] = []
        for _ in range(20):
            batch = await consumer.getmany(timeout_ms=1000)
            seen += [m.value.decode() for ms in batch.values() for m in ms
                     if m.key == key.encode() and m.value]
            if len(seen) >= 2:
                break
    finally:
        await consumer.stop()
    assert [json.loads(v)["id"] for v in seen] == [first.id, second.id]
