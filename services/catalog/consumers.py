"""The catalogue's consumer of ``recordings.v1``.

At-least-once: offsets are committed only after the database transaction that applied the
messages; a redelivered event is recognised by its id (recorded in the same transaction) and
skipped. A message that cannot be parsed goes to ``dead_letters`` instead of blocking the
partition or vanishing.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

import asyncpg
from aiokafka import ConsumerRecord, TopicPartition
from prometheus_client import Counter, Gauge
from pydantic import ValidationError

from bwc.db import Connection
from bwc.events import CloudEvent, EventType, RecordingIngestedV1, Topic
from bwc.kafka import ensure_topics, make_consumer
from services.catalog import repository as repo
from services.catalog.config import CatalogSettings

log = logging.getLogger(__name__)

Handler = Callable[[Connection, CloudEvent], Awaitable[None]]


def handlers(settings: CatalogSettings) -> dict[str, Handler]:
    async def on_ingested(conn: Connection, event: CloudEvent) -> None:
        data = event.parsed_data()
        assert isinstance(data, RecordingIngestedV1)
        # R2: never later than this deployment's own retention period allows.
        delete_after = min(data.delete_after, data.recorded_at + settings.retention_period)
        await repo.upsert_ingested(conn, data, delete_after=delete_after)

    return {EventType.RECORDING_INGESTED.value: on_ingested}


class UnusableEvent(Exception):
    """A message that no retry will make usable: it is parked in ``dead_letters``."""


def _decode(message: ConsumerRecord[bytes, bytes], table: dict[str, Handler]) -> CloudEvent:
    try:
        event = CloudEvent.model_validate(json.loads(message.value or b""))
    except (ValueError, ValidationError) as exc:
        raise UnusableEvent(f"unreadable event: {exc}") from exc
    if event.type not in table:
        # Parked, not marked processed: a later version of this service can replay it.
        raise UnusableEvent(f"no handler for event type {event.type!r}")
    try:
        event.parsed_data()
    except (ValueError, ValidationError) as exc:
        raise UnusableEvent(f"invalid data for {event.type}: {exc}") from exc
    return event


async def apply_message(
    pool: asyncpg.Pool, message: ConsumerRecord[bytes, bytes], table: dict[str, Handler]
) -> None:
    """Apply one message exactly once, or park it. Database and broker errors propagate, so
    the consumer retries the message rather than skip it."""
    try:
        event = _decode(message, table)
        async with pool.acquire() as conn, conn.transaction():
            if await repo.mark_processed(conn, event_id=event.id, event_type=event.type,
                                         topic=message.topic):
                await table[event.type](conn, event)
    except (UnusableEvent, asyncpg.DataError, asyncpg.IntegrityConstraintViolationError) as exc:
        async with pool.acquire() as conn:
            await repo.store_dead_letter(
                conn, topic=message.topic, partition=message.partition, offset=message.offset,
                key=message.key, value=message.value, error=str(exc)[:2000])
        log.error("dead-lettered a message", extra={
            "topic": message.topic, "partition": message.partition, "offset": message.offset,
            "error": str(exc)[:500]})


CONSUMED = Counter("bwc_events_consumed_total", "Kafka messages applied or parked", ["topic"])
CONNECTED = Gauge("bwc_consumer_connected", "1 while the consumer is connected to the broker")


async def run(pool: asyncpg.Pool, settings: CatalogSettings) -> None:
    """Consume forever; reconnect with back-off when the broker goes away."""
    table = handlers(settings)
    backoff = 0.5
    while True:
        consumer = make_consumer(settings, Topic.RECORDINGS.value,
                                 group_id=settings.catalog_consumer_group,
                                 client_id="bwc-catalog")
        try:
            await ensure_topics(settings, [Topic.RECORDINGS.value])
            await consumer.start()
            CONNECTED.set(1)
            backoff = 0.5
            while True:
                batch = await consumer.getmany(timeout_ms=500, max_records=100)
                for tp, messages in batch.items():
                    for message in messages:
                        await apply_message(pool, message, table)
                    await consumer.commit({TopicPartition(tp.topic, tp.partition):
                                           messages[-1].offset + 1})
                    CONSUMED.labels(tp.topic).inc(len(messages))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            CONNECTED.set(0)
            log.warning("consumer failed; reconnecting",
                        extra={"error": repr(exc), "retry_in_s": backoff})
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, timedelta(seconds=10).total_seconds())
        finally:
            await consumer.stop()
