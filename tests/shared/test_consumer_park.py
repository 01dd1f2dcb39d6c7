"""Parking keeps every distinct message: a redelivered message is parked once, a different
message at a reused offset (a recreated topic, a restarted embedded broker) is kept too."""

from __future__ import annotations

import uuid

import asyncpg
from aiokafka import ConsumerRecord

from bwc.consumer import EventConsumer
from bwc.db import create_pool
from bwc.devstack.stack import Stack
from bwc.events import Topic
from bwc.settings import CommonSettings


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
