"""The catalogue consumer is idempotent by event id and keeps unreadable messages."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer

from bwc.devstack.stack import Stack
from bwc.events import CloudEvent, Topic
from tests.fixtures.clients import wait_for_recording
from tests.fixtures.events import ingested_event


def _event(recording_id: uuid.UUID, *, delete_after: datetime) -> CloudEvent:
    return ingested_event(recording_id, delete_after=delete_after)


async def _send(stack: Stack, *messages: tuple[bytes, bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=stack.env["BWC_KAFKA_BOOTSTRAP"], acks="all")
    await producer.start()
    try:
        for key, value in messages:
            await producer.send_and_wait(Topic.RECORDINGS.value, value=value, key=key)
    finally:
        await producer.stop()


async def test_redelivered_event_is_applied_once(
    stack: Stack, http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    recording_id = uuid.uuid4()
    event = _event(recording_id, delete_after=datetime.now(UTC) + timedelta(days=13))
    payload = json.dumps(event.model_dump(mode="json")).encode()
    await _send(stack, (str(recording_id).encode(), payload), (str(recording_id).encode(), payload))
    await wait_for_recording(http, stack, str(recording_id))
    await asyncio.sleep(1)  # give the duplicate time to arrive
    assert await db.fetchval("SELECT count(*) FROM catalog.processed_events WHERE event_id = $1",
                             event.id) == 1
    assert await db.fetchval("SELECT count(*) FROM catalog.recordings WHERE id = $1",
                             recording_id) == 1


async def test_deadline_never_exceeds_the_catalogues_retention_period(
    stack: Stack, http: httpx.AsyncClient
) -> None:
    """R2: an event claiming a later deadline is capped at recorded_at + 14 days."""
    recording_id = uuid.uuid4()
    event = _event(recording_id, delete_after=datetime.now(UTC) + timedelta(days=60))
    await _send(stack, (str(recording_id).encode(),
                        json.dumps(event.model_dump(mode="json")).encode()))
    recording = await wait_for_recording(http, stack, str(recording_id))
    recorded_at = datetime.fromisoformat(recording["recorded_at"])
    assert datetime.fromisoformat(recording["delete_after"]) == recorded_at + timedelta(days=14)


async def test_unreadable_message_is_dead_lettered_not_lost(
    stack: Stack, http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    marker = uuid.uuid4().hex
    await _send(stack, (marker.encode(), b"{not json"))
    # A valid event behind it still gets through: the partition is not blocked.
    recording_id = uuid.uuid4()
    event = _event(recording_id, delete_after=datetime.now(UTC) + timedelta(days=1))
    await _send(stack, (marker.encode(), json.dumps(event.model_dump(mode="json")).encode()))
    await wait_for_recording(http, stack, str(recording_id))
    row = await db.fetchrow("SELECT error, value FROM catalog.dead_letters WHERE key = $1", marker)
    assert row is not None
    assert bytes(row["value"]) == b"{not json"
    assert "unreadable" in row["error"]


async def test_invalid_data_and_unknown_types_are_parked_and_do_not_block(
    stack: Stack, http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    marker = uuid.uuid4().hex
    good = _event(uuid.uuid4(), delete_after=datetime.now(UTC) + timedelta(days=1))
    bad_data = good.model_copy(update={"id": str(uuid.uuid4()),
                                       "data": {**good.data, "sha256": "not-a-hash"}})
    unknown = good.model_copy(update={"id": str(uuid.uuid4()), "type": "recording.future"})
    newer = _event(uuid.uuid4(), delete_after=datetime.now(UTC) + timedelta(days=1))
    newer.data["field_from_the_future"] = 1  # tolerant reader: ignored
    await _send(stack, *[(marker.encode(), json.dumps(e.model_dump(mode="json")).encode())
                         for e in (bad_data, unknown, newer, good)])
    await wait_for_recording(http, stack, str(good.data["recording_id"]))
    await wait_for_recording(http, stack, str(newer.data["recording_id"]))
    errors = [r["error"] for r in await db.fetch(
        "SELECT error FROM catalog.dead_letters WHERE key = $1 ORDER BY kafka_offset", marker)]
    assert len(errors) == 2
    assert "invalid data" in errors[0] and "sha256" in errors[0]
    assert "recording.future" in errors[1]
    # An unknown type is not marked processed, so a later version can replay it.
    assert await db.fetchval("SELECT count(*) FROM catalog.processed_events WHERE event_id = $1",
                             unknown.id) == 0


async def test_poison_message_is_parked_and_the_events_behind_it_are_applied(
    stack: Stack, http: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    """Issue 5, defect 5: a handler that fails on a message (here: a recording made at the end
    of the year 9999, whose deadline overflows) is retried, then parked; it no longer restarts
    the consumer forever, and the valid event behind it in the same partition is applied."""
    marker = uuid.uuid4().hex
    poison = _event(uuid.uuid4(), delete_after=datetime.now(UTC) + timedelta(days=1))
    poison.data["recorded_at"] = "9999-12-25T00:00:00+00:00"
    poison.data["uploaded_at"] = "9999-12-31T00:00:00+00:00"
    naive = _event(uuid.uuid4(), delete_after=datetime.now(UTC) + timedelta(days=1))
    naive.data["recorded_at"] = "2026-11-24T10:00:00"  # no time zone
    good = _event(uuid.uuid4(), delete_after=datetime.now(UTC) + timedelta(days=1))
    await _send(stack, *[(marker.encode(), json.dumps(e.model_dump(mode="json")).encode())
                         for e in (poison, naive, good)])
    await wait_for_recording(http, stack, str(good.data["recording_id"]), timeout=60)
    parked = await db.fetch(
        "SELECT error, attempts FROM catalog.dead_letters WHERE key = $1 ORDER BY kafka_offset",
        marker)
    assert len(parked) == 2
    assert "failed 3 times" in parked[0]["error"] and parked[0]["attempts"] == 3
    assert "invalid data" in parked[1]["error"] and parked[1]["attempts"] == 1
    ready = (await http.get(f"{stack.url('catalog')}/readyz")).json()
    assert ready["tasks"]["recordings-consumer"]["restarts"] == 0, ready
