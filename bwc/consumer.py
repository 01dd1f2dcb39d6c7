"""At-least-once event consumption that one bad message cannot block.

Every service that reads a topic runs an ``EventConsumer`` under the supervisor:

- offsets are committed only after the database transaction that applied the messages, and
  that transaction also records the event id, so a redelivered event is skipped;
- a message that cannot be understood (not JSON, not a CloudEvent, invalid data, an unknown
  type) is parked in the schema's ``dead_letters`` at once; one whose handler fails
  ``max_attempts`` times in a row is parked too, and the partition moves on;
- an unreachable database or broker is not the message's fault: the error propagates, the
  supervisor restarts the consumer with back-off, and the message is delivered again;
- offsets of revoked partitions are committed in the rebalance callback, and a commit refused
  because of a rebalance is logged, not fatal (the new owner skips what was applied).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, RebalanceInProgressError
from prometheus_client import Counter, Gauge
from pydantic import ValidationError

from bwc.db import Connection
from bwc.events import CloudEvent, Topic
from bwc.kafka import ensure_topics, make_consumer
from bwc.settings import CommonSettings
from bwc.supervisor import is_dependency_error

log = logging.getLogger(__name__)

#: Migration folder every consuming service adds to its own schema.
CONSUMER_MIGRATIONS = Path(__file__).parent / "sql" / "consumer"

Handler = Callable[[Connection, CloudEvent], Awaitable[None]]

CONSUMED = Counter("bwc_events_consumed_total", "Kafka messages applied or parked", ["topic"])
PARKED = Counter("bwc_events_parked_total", "Kafka messages parked in dead_letters", ["topic"])
CONNECTED = Gauge("bwc_consumer_connected", "1 while the consumer is connected to the broker")

#: Pauses between attempts of a failing handler before the message is parked.
RETRY_DELAYS = (0.2, 1.0)

_COMMIT_REFUSED = (CommitFailedError, IllegalStateError, RebalanceInProgressError)


class UnusableEvent(Exception):
    """A message that no retry will make usable: it is parked in ``dead_letters`` at once."""


def decode(message: ConsumerRecord[bytes, bytes], handlers: dict[str, Handler]) -> CloudEvent:
    try:
        event = CloudEvent.model_validate(json.loads(message.value or b""))
    except (ValueError, ValidationError) as exc:
        raise UnusableEvent(f"unreadable event: {exc}") from exc
    if event.type not in handlers:
        # Parked, not marked processed: a later version of this service can replay it.
        raise UnusableEvent(f"no handler for event type {event.type!r}")
    try:
        event.parsed_data()
    except (ValueError, ValidationError, OverflowError) as exc:
        raise UnusableEvent(f"invalid data for {event.type}: {exc}") from exc
    return event


class EventConsumer:
    """Consumes ``topics`` into ``schema`` with ``handlers`` (event type → handler)."""

    def __init__(
        self, pool: asyncpg.Pool, settings: CommonSettings, *, schema: str,
        topics: Sequence[Topic], group_id: str, client_id: str, handlers: dict[str, Handler],
        retry_delays: Sequence[float] = RETRY_DELAYS,
    ) -> None:
        self.pool = pool
        self.settings = settings
        self.schema = schema
        self.topics = [t.value for t in topics]
        self.group_id = group_id
        self.client_id = client_id
        self.handlers = handlers
        self.retry_delays = tuple(retry_delays)

    # -- the supervised loop ------------------------------------------------------------------

    async def run(self) -> None:
        await ensure_topics(self.settings, self.topics)
        consumer = make_consumer(self.settings, group_id=self.group_id, client_id=self.client_id)
        applied: dict[TopicPartition, int] = {}
        consumer.subscribe(self.topics, listener=_CommitOnRevoke(consumer, applied))
        try:
            await consumer.start()
            CONNECTED.set(1)
            while True:
                batch = await consumer.getmany(timeout_ms=500, max_records=100)
                for tp, messages in batch.items():
                    for message in messages:
                        await self.apply(message)
                        applied[tp] = message.offset + 1
                    CONSUMED.labels(tp.topic).inc(len(messages))
                    await _commit(consumer, {tp: applied.pop(tp)})
        finally:
            CONNECTED.set(0)
            if applied:  # stopped mid-batch (shutdown): keep what was applied
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(_commit(consumer, dict(applied)), timeout=5)
            await consumer.stop()

    # -- one message --------------------------------------------------------------------------

    async def apply(self, message: ConsumerRecord[bytes, bytes]) -> None:
        """Apply one message exactly once, or park it. Dependency errors propagate."""
        attempts = len(self.retry_delays) + 1
        for attempt in range(1, attempts + 1):
            try:
                event = decode(message, self.handlers)
                await self._apply_once(event, message.topic)
                return
            except UnusableEvent as exc:
                await self.park(message, str(exc), attempt)
                return
            except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError) as exc:
                # The database refuses these values; they will not change on a retry.
                await self.park(message, f"refused by the database: {exc}", attempt)
                return
            except Exception as exc:
                if is_dependency_error(exc):
                    raise
                if attempt == attempts:
                    await self.park(message, f"failed {attempt} times: {exc!r}", attempt)
                    return
                log.warning("event handler failed; retrying", extra={
                    "topic": message.topic, "partition": message.partition,
                    "offset": message.offset, "attempt": attempt, "error": repr(exc)[:500]})
                await asyncio.sleep(self.retry_delays[attempt - 1])

    async def _apply_once(self, event: CloudEvent, topic: str) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            if await self._mark_processed(conn, event, topic):
                await self.handlers[event.type](conn, event)

    async def _mark_processed(self, conn: Connection, event: CloudEvent, topic: str) -> bool:
        """Record the event id; ``False`` when it was processed before (a redelivery)."""
        inserted = await conn.fetchval(
            f'INSERT INTO "{self.schema}".processed_events (event_id, type, topic)'
            " VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING true",
            event.id, event.type, topic)
        return bool(inserted)

    async def park(self, message: ConsumerRecord[bytes, bytes], error: str, attempts: int) -> None:
        async with self.pool.acquire() as conn:
            await conn.execute(
                f'INSERT INTO "{self.schema}".dead_letters (topic, kafka_partition,'
                " kafka_offset, key, value, error, attempts) VALUES ($1, $2, $3, $4, $5, $6, $7)"
                " ON CONFLICT DO NOTHING",
                message.topic, message.partition, message.offset,
                message.key.decode(errors="replace") if message.key else None, message.value,
                error[:2000], attempts)
        PARKED.labels(message.topic).inc()
        log.error("parked a message in dead_letters", extra={
            "topic": message.topic, "partition": message.partition, "offset": message.offset,
            "attempts": attempts, "error": error[:500]})


async def _commit(consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int]) -> None:
    try:
        await consumer.commit(offsets)
    except _COMMIT_REFUSED as exc:
        # The partition moved to another member meanwhile; it starts from the last committed
        # offset and skips, by event id, what was applied here.
        log.warning("offset commit refused during a rebalance",
                    extra={"offsets": {str(tp): o for tp, o in offsets.items()},
                           "error": repr(exc)})


class _CommitOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Commits what was applied of a partition before it is taken away (aiokafka docs)."""

    def __init__(self, consumer: AIOKafkaConsumer, applied: dict[TopicPartition, int]) -> None:
        self.consumer = consumer
        self.applied = applied

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        offsets = {tp: self.applied.pop(tp) for tp in revoked if tp in self.applied}
        if offsets:
            await _commit(self.consumer, offsets)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        return None
