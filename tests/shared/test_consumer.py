"""The shared at-least-once consumer (bwc/consumer.py): parking keeps every distinct message,
and a consumer stopped mid-batch commits what it applied."""

from __future__ import annotations

import asyncio
import contextlib
import types
import uuid

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from bwc.consumer import CONSUMER_MIGRATIONS, EventConsumer
from bwc.db import create_pool, migrate
from bwc.devstack.stack import Stack
from bwc.events import CloudEvent, Topic
from bwc.kafka import ensure_topics
from bwc.settings import CommonSettings
from tests.fixtures.events import encoded, ingested_event


def _record(key: bytes, value: bytes, offset: int) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(topic="recordings.v1", partition=0, offset=offset, timestamp=0,
                          timestamp_type=0, key=key, value=value, checksum=None,
                          serialized_key_size=len(key), serialized_value_size=len(value),
                          headers=())


async def test_distinct_messages_at_a_reused_offset_are_all_parked(
    stack: Stack, db: asyncpg.Connection
) -> None:
    pool = await create_pool(stack.env["BWC_DATABASE_URL"], size=2)
    try:
        consumer = EventConsumer(pool, CommonSettings(), schema="catalog",
                                 topics=[Topic.RECORDINGS], group_id="unused",
                                 client_id="test", handlers={})
        key = uuid.uuid4().hex.encode()
        offset = 10**12 + int.from_bytes(key[:4], "big")  # far from any real offset
        await consumer.park(_record(key, b"first", offset), "unreadable", 1)
        await consumer.park(_record(key, b"first", offset), "unreadable", 1)  # redelivered
        await consumer.park(_record(key, b"second", offset), "unreadable", 1)  # offset reused
    finally:
        await pool.close()
    values = [bytes(r["value"]) for r in await db.fetch(
        "SELECT value FROM catalog.dead_letters WHERE key = $1 ORDER BY id", key.decode())]
    assert values == [b"first", b"second"]


async def test_a_consumer_stopped_mid_batch_commits_what_it_applied(stack: Stack) -> None:
    """tests/resilience/test_graceful_shutdown.py cannot see this: its consumer has committed
    every batch long before SIGTERM (the test passes with the commit on stop removed). Here the
    consumer is cancelled, as Supervisor.stop does, while the second event of a batch is in its
    handler: the first one's offset must be committed, the second's not."""
    topic = types.SimpleNamespace(value=f"review-test-{uuid.uuid4().hex[:8]}")
    schema = f"review_test_{uuid.uuid4().hex[:8]}"
    settings = CommonSettings(kafka_bootstrap=stack.env["BWC_KAFKA_BOOTSTRAP"],
                              kafka_replication_factor=1, kafka_min_insync_replicas=1)
    pool = await create_pool(stack.env["BWC_DATABASE_URL"], size=3)
    blocked, applied = asyncio.Event(), []

    async def handler(_: object, event: CloudEvent) -> None:
        applied.append(event.id)
        if len(applied) == 2:
            blocked.set()
            await asyncio.Event().wait()  # shutdown arrives while this one is applied

    try:
        await migrate(pool, schema=schema, sources=[CONSUMER_MIGRATIONS])
        await ensure_topics(settings, [topic.value])
        events = [ingested_event(), ingested_event()]
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
        await producer.start()
        try:
            sent = [await producer.send_and_wait(topic.value, key=b"k", value=encoded(e))
                    for e in events]
        finally:
            await producer.stop()
        group = f"review-test-{uuid.uuid4().hex[:8]}"
        consumer = EventConsumer(pool, settings, schema=schema, topics=[topic],  # type: ignore[list-item]
                                 group_id=group, client_id="test",
                                 handlers={"recording.ingested": handler})
        running = asyncio.create_task(consumer.run())
        await asyncio.wait_for(blocked.wait(), timeout=60)
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        assert applied == [events[0].id, events[1].id]
        probe = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=group,
                                 enable_auto_commit=False)
        await probe.start()
        try:
            committed = await probe.committed(TopicPartition(topic.value, sent[0].partition))
        finally:
            await probe.stop()
        assert committed == sent[0].offset + 1, committed
    finally:
        async with pool.acquire() as conn:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await pool.close()
