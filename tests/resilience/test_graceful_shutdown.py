"""Graceful shutdown (issue 11, item 5): on SIGTERM a service turns unready, an upload in
flight keeps what arrived, the process exits well within the grace period, the device resumes
on another instance, and a consumer leaves with its offsets committed."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bwc.devstack.processes import Child
from bwc.devstack.stack import Stack
from bwc.events import Topic
from tests.fixtures.clients import (
    MIB,
    Device,
    auth,
    encode_metadata,
    patch_headers,
    recording_metadata,
    upload_offset,
    wait_for_recording,
)
from tests.fixtures.events import encoded, ingested_event
from tests.fixtures.services import extra_service

DRAIN, GRACE = 3.0, 10.0


async def _exits_cleanly(child: Child, timeout: float) -> None:
    """The process ends by itself within ``timeout``, after its lifespan shut down (uvicorn
    re-raises the SIGTERM it handled, so the exit status may be -SIGTERM)."""
    deadline = time.monotonic() + timeout
    while (code := child.process.poll()) is None:
        assert time.monotonic() < deadline, "the service did not exit in time"
        await asyncio.sleep(0.1)
    assert code in (0, -signal.SIGTERM), code
    assert "Application shutdown complete" in child.log_tail(), child.log_tail()


async def test_sigterm_during_an_upload_keeps_its_bytes_and_the_device_resumes_elsewhere(
    stack: Stack, http: httpx.AsyncClient, device: Device
) -> None:
    data = os.urandom(16 * MIB)
    sent_before_signal = 7 * MIB
    # The same database as the stack's ingest: either instance can continue the upload.
    async with extra_service(stack, "ingest", env={
            "BWC_SHUTDOWN_DRAIN": str(DRAIN), "BWC_SHUTDOWN_GRACE": str(GRACE)}) as leaving:
        created = await http.post(f"{leaving.url}/files/", headers={
            **auth(device.token), "Tus-Resumable": "1.0.0", "Upload-Length": str(len(data)),
            "Upload-Metadata": encode_metadata(recording_metadata(device.device_id))})
        assert created.status_code == 201, created.text
        url = created.headers["Location"]
        signalled = asyncio.Event()

        async def body() -> AsyncIterator[bytes]:
            yield data[:sent_before_signal]
            signalled.set()
            for start in range(sent_before_signal, len(data), 256 * 1024):
                await asyncio.sleep(0.2)  # a slow tail, still arriving when SIGTERM comes
                yield data[start:start + 256 * 1024]

        async def patch() -> httpx.Response | None:
            try:
                return await http.patch(url, content=body(),
                                        headers=patch_headers(device.token, 0))
            except httpx.HTTPError:
                return None  # the server may close the connection under the sender

        sender = asyncio.create_task(patch())
        await signalled.wait()
        await asyncio.sleep(0.5)  # the first bytes are being stored
        started = time.monotonic()
        leaving.child.process.send_signal(signal.SIGTERM)

        # During the drain the instance still answers, and says it is not ready.
        await asyncio.sleep(0.3)
        ready = await http.get(f"{leaving.url}/readyz")
        assert ready.status_code == 503, ready.text
        assert "shutting down" in ready.json()["reasons"]

        response = await sender
        if response is not None:  # the PATCH ended early: 503, retry elsewhere
            assert response.status_code == 503, response.text
            assert response.headers.get("Retry-After")
        await _exits_cleanly(leaving.child, DRAIN + GRACE + 5)
        assert time.monotonic() - started < DRAIN + GRACE

    # Another instance takes over: what arrived before the shutdown was kept.
    offset = await upload_offset(http, url.replace(leaving.url, stack.url("ingest")), device)
    assert sent_before_signal <= offset < len(data)
    resumed = await http.patch(url.replace(leaving.url, stack.url("ingest")),
                               content=data[offset:],
                               headers=patch_headers(device.token, offset))
    assert resumed.status_code == 204, resumed.text
    recording = await wait_for_recording(http, stack, url.rstrip("/").rsplit("/", 1)[-1])
    assert recording["sha256"] == hashlib.sha256(data).hexdigest()


async def test_a_consumer_commits_what_it_applied_before_it_exits(stack: Stack) -> None:
    group = f"bwc-catalog-{uuid.uuid4().hex[:8]}"
    async with extra_service(stack, "catalog", own_database=True, env={
            "BWC_CATALOG_CONSUMER_GROUP": group, "BWC_SHUTDOWN_DRAIN": "0"}) as catalog:
        producer = AIOKafkaProducer(bootstrap_servers=stack.env["BWC_KAFKA_BOOTSTRAP"],
                                    acks="all")
        await producer.start()
        last: dict[TopicPartition, int] = {}
        ids = []
        try:
            for _ in range(5):
                event = ingested_event()
                ids.append(event.subject)
                meta = await producer.send_and_wait(
                    Topic.RECORDINGS.value, key=event.subject.encode(), value=encoded(event))
                tp = TopicPartition(meta.topic, meta.partition)
                last[tp] = max(last.get(tp, -1), meta.offset)
        finally:
            await producer.stop()
        db = await asyncpg.connect(catalog.env["BWC_DATABASE_URL"])
        try:
            for _ in range(300):
                if await db.fetchval("SELECT count(*) FROM catalog.recordings"
                                     " WHERE id = ANY($1::uuid[])", ids) == len(ids):
                    break
                await asyncio.sleep(0.2)
            else:
                raise AssertionError("the extra catalogue did not apply the events")
        finally:
            await db.close()
        catalog.child.process.send_signal(signal.SIGTERM)
        await _exits_cleanly(catalog.child, GRACE)

    probe = AIOKafkaConsumer(bootstrap_servers=stack.env["BWC_KAFKA_BOOTSTRAP"], group_id=group,
                             enable_auto_commit=False)
    await probe.start()
    try:
        for tp, offset in last.items():
            committed = await probe.committed(tp)
            assert committed is not None and committed >= offset + 1, (tp, committed, offset)
    finally:
        await probe.stop()
