"""No event is lost while the broker is down: uploads still complete and the catalogue
catches up once the broker is back (outbox + at-least-once consumer).

The test runs an ingest and a catalogue of its own against a broker of its own, so that
stopping the broker (whose memory storage then starts empty) leaves the shared stack alone.
"""

from __future__ import annotations

import hashlib
import os

import asyncpg
import httpx

from bwc.devstack import infra
from bwc.devstack.processes import free_port
from bwc.devstack.stack import Stack
from tests.fixtures.clients import MIB, upload_through, wait_for_recording
from tests.fixtures.services import extra_service


async def test_upload_during_broker_outage_arrives_late(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    port = free_port()
    infra.start_broker(stack.group, port)
    broker = stack.group.children[-1]
    env = {"BWC_KAFKA_BOOTSTRAP": f"127.0.0.1:{port}"}
    try:
        async with extra_service(stack, "ingest", own_database=True, env=env) as ingest, \
                extra_service(stack, "catalog", own_database=True, env=env) as catalog:
            broker.stop()
            stack.group.children.remove(broker)
            data = os.urandom(2 * MIB)
            recording_id = await upload_through(http, stack, ingest.url, data)  # no Kafka needed
            db = await asyncpg.connect(ingest.env["BWC_DATABASE_URL"])
            try:
                assert await db.fetchval(
                    "SELECT count(*) FROM ingest.outbox WHERE key = $1 AND published_at IS NULL",
                    recording_id) == 1
                # Issue 11, item 4: the broker decides no service's readiness. Ingest accepts
                # uploads (the outbox keeps the events), the catalogue serves reads; Kafka is
                # reported.
                for service in (ingest, catalog):
                    ready = await http.get(f"{service.url}/readyz")
                    assert ready.status_code == 200, ready.text
                    assert ready.json()["checks"]["kafka"].startswith("error"), ready.text

                # Memory storage: the broker comes back empty; the services re-create the topic
                # and the event comes from the outbox.
                infra.start_broker(stack.group, port)
                broker = stack.group.children[-1]
                recording = await wait_for_recording(http, stack, recording_id, timeout=90,
                                                     catalog_url=catalog.url)
                assert recording["sha256"] == hashlib.sha256(data).hexdigest()
                assert await db.fetchval(
                    "SELECT published_at IS NOT NULL FROM ingest.outbox WHERE key = $1",
                    recording_id)
            finally:
                await db.close()
    finally:
        if broker in stack.group.children:
            broker.stop()
            stack.group.children.remove(broker)
