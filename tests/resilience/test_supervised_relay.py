"""The outbox relay does not die when the broker is away at start-up (issue 5, defect 1):
ingest keeps accepting uploads, /readyz shows the relay waiting, and the event is published
as soon as the broker is there."""

from __future__ import annotations

import asyncio
import json
import os

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer

from bwc.devstack import infra
from bwc.devstack.processes import free_port
from bwc.devstack.stack import Stack
from bwc.events import Topic
from tests.fixtures.clients import upload_through
from tests.fixtures.services import extra_service


async def test_relay_survives_a_broker_that_is_away_at_start_up(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    broker_port = free_port()  # nothing listens here yet
    # A database of its own, so the stack's ingest relay cannot publish this outbox for it.
    async with extra_service(stack, "ingest", own_database=True,
                             env={"BWC_KAFKA_BOOTSTRAP": f"127.0.0.1:{broker_port}"}) as ingest:
        recording_id = await upload_through(http, stack, ingest.url, os.urandom(64 * 1024))

        ready = await http.get(f"{ingest.url}/readyz")
        assert ready.status_code == 200, ready.text  # uploads work: the outbox keeps the event
        relay = ready.json()["tasks"]["outbox-relay"]
        assert relay["state"] == "waiting", relay
        assert relay["restarts"] >= 1

        infra.start_broker(stack.group, broker_port)
        broker = stack.group.children[-1]
        try:
            db = await asyncpg.connect(ingest.env["BWC_DATABASE_URL"])
            try:
                for _ in range(300):
                    if await db.fetchval("SELECT published_at IS NOT NULL FROM ingest.outbox"
                                         " WHERE key = $1", recording_id):
                        break
                    await asyncio.sleep(0.2)
                else:
                    raise AssertionError("the relay never published the event")
            finally:
                await db.close()
            consumer = AIOKafkaConsumer(
                Topic.RECORDINGS.value, bootstrap_servers=f"127.0.0.1:{broker_port}",
                auto_offset_reset="earliest", enable_auto_commit=False, group_id=None)
            await consumer.start()
            try:
                batch = await consumer.getmany(timeout_ms=10_000)
            finally:
                await consumer.stop()
            subjects = [json.loads(m.value)["subject"] for ms in batch.values() for m in ms
                        if m.value]
            assert recording_id in subjects
            ready = await http.get(f"{ingest.url}/readyz")
            assert ready.json()["tasks"]["outbox-relay"]["state"] == "running"
        finally:
            broker.stop()
            stack.group.children.remove(broker)
