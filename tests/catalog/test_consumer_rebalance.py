"""A rebalance does not tear the consumer down (issue 5, defect 5): another member joins the
catalogue's consumer group while events flow and leaves again without committing; the
catalogue keeps running (no restart) and applies every event."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bwc.devstack.stack import Stack
from bwc.events import Topic
from tests.fixtures.events import encoded, ingested_event
from tests.fixtures.services import extra_service


async def _applied(db: asyncpg.Connection, ids: list[str]) -> int:
    count: int = await db.fetchval(
        "SELECT count(*) FROM catalog.recordings WHERE id = ANY($1::uuid[])", ids)
    return count


async def test_a_rebalance_does_not_tear_the_consumer_down(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    group = f"bwc-catalog-{uuid.uuid4().hex[:8]}"
    bootstrap = stack.env["BWC_KAFKA_BOOTSTRAP"]
    async with extra_service(stack, "catalog", own_database=True,
                             env={"BWC_CATALOG_CONSUMER_GROUP": group}) as catalog:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        db = await asyncpg.connect(catalog.env["BWC_DATABASE_URL"])
        ids: list[str] = []

        async def send(n: int, pause: float) -> None:
            for _ in range(n):
                event = ingested_event(device_id="cam-rebalance")
                ids.append(event.subject)
                await producer.send_and_wait(Topic.RECORDINGS.value, key=event.subject.encode(),
                                             value=encoded(event))
                await asyncio.sleep(pause)

        try:
            await send(1, 0)
            for _ in range(300):  # the catalogue has joined its group and applies events
                if await _applied(db, ids) == 1:
                    break
                await asyncio.sleep(0.1)
            flowing = asyncio.create_task(send(30, 0.3))
            intruder = AIOKafkaConsumer(Topic.RECORDINGS.value, bootstrap_servers=bootstrap,
                                        group_id=group, enable_auto_commit=False,
                                        auto_offset_reset="earliest")
            await intruder.start()  # joins the group: the partitions are shared out again
            try:
                for _ in range(10):
                    await intruder.getmany(timeout_ms=500)  # takes messages, commits nothing
            finally:
                await intruder.stop()  # leaves: another rebalance
            await flowing
            for _ in range(300):
                if await _applied(db, ids) == len(ids):
                    break
                await asyncio.sleep(0.2)
            assert await _applied(db, ids) == len(ids)
        finally:
            await producer.stop()
            await db.close()
        ready = (await http.get(f"{catalog.url}/readyz")).json()
        assert ready["tasks"]["recordings-consumer"]["restarts"] == 0, ready
