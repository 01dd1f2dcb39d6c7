"""Transactional outbox: write events with the state change, publish them afterwards.

``enqueue`` runs inside the caller's transaction. ``OutboxRelay`` publishes pending rows in
``seq`` order. Two guarantees make the order of one key's events the order of their commits:

- ``enqueue`` takes a transaction lock on the key before the row gets its ``seq``, so a second
  transaction writing an event for the same key allocates its ``seq`` only after the first one
  has committed (or rolled back). Without it, a later ``seq`` could commit first and be
  published before an earlier one that was still in flight.
- only one relay per schema publishes at a time (an advisory lock), whatever the number of
  replicas.

Events for different keys may be published in any order, as Kafka only orders a partition.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaProducer

from bwc.db import Connection
from bwc.events import CloudEvent, Topic

PURGE_INTERVAL_S = 600.0

#: Migration folder every event-producing service adds to its own schema.
OUTBOX_MIGRATIONS = Path(__file__).parent / "sql" / "outbox"


async def enqueue(
    conn: Connection, *, schema: str, topic: Topic, key: str, event: CloudEvent
) -> None:
    """Write ``event`` into ``schema``'s outbox, inside the caller's transaction."""
    if not conn.is_in_transaction():
        raise RuntimeError("enqueue must run inside the transaction of the state change")
    # Held until commit: events of one key get their seq in commit order.
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                       f"outbox:{schema}:{key}")
    await conn.execute(
        f'INSERT INTO "{schema}".outbox (event_id, topic, key, payload) VALUES ($1, $2, $3, $4)',
        event.id,
        topic.value,
        key,
        event.model_dump(mode="json"),
    )
    await conn.execute("SELECT pg_notify($1, '')", f"{schema}_outbox")


class OutboxRelay:
    """Publishes a schema's outbox to Kafka; survives broker outages by retrying."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        schema: str,
        producer_factory: Callable[[], AIOKafkaProducer],
        batch_size: int = 100,
        idle_interval: float = 0.5,
        keep_published: timedelta = timedelta(days=1),
    ) -> None:
        self.pool = pool
        self.schema = schema
        self._producer_factory = producer_factory
        self._producer: AIOKafkaProducer | None = None
        self.batch_size = batch_size
        self.idle_interval = idle_interval
        self._wake = asyncio.Event()
        self.keep_published = keep_published
        self._purged_at = 0.0

    async def _ensure_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = self._producer_factory()
            try:
                await producer.start()
            except Exception:
                await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def publish_batch(self) -> int:
        """Publish up to ``batch_size`` pending events; returns how many were published."""
        producer = await self._ensure_producer()
        async with self.pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval(
                "SELECT pg_try_advisory_xact_lock(hashtext($1))", f"outbox:{self.schema}"
            ):
                return 0
            rows = await conn.fetch(
                f'SELECT seq, topic, key, payload FROM "{self.schema}".outbox'
                " WHERE published_at IS NULL ORDER BY seq LIMIT $1",
                self.batch_size,
            )
            if not rows:
                return 0
            futures = [
                await producer.send(
                    r["topic"],
                    value=json.dumps(r["payload"]).encode(),
                    key=r["key"].encode(),
                    headers=[("content-type", b"application/cloudevents+json")],
                )
                for r in rows
            ]
            # acks=all: a row is marked published only once the broker has it.
            await asyncio.gather(*futures)
            await conn.execute(
                f'UPDATE "{self.schema}".outbox SET published_at = now()'
                " WHERE seq = ANY($1::bigint[])",
                [r["seq"] for r in rows],
            )
        return len(rows)

    async def purge_published(self) -> int:
        """Drop rows published longer ago than ``keep_published``: events carry recording
        metadata, which must not outlive the recording (R5)."""
        status: str = await self.pool.execute(
            f'DELETE FROM "{self.schema}".outbox WHERE published_at < now() - $1::interval',
            self.keep_published,
        )
        self._purged_at = time.monotonic()
        return int(status.split()[-1])

    async def run(self) -> None:
        """Publish until cancelled. A failure (broker or database away) ends the run and
        propagates to the supervisor, which starts it again with back-off; each run opens its
        own listener connection and producer."""
        channel = f"{self.schema}_outbox"

        def wake(*_: object) -> None:
            self._wake.set()

        try:
            async with self.pool.acquire() as listener:
                await listener.add_listener(channel, wake)
                try:
                    await self._publish_forever()
                finally:
                    # The connection may be what failed; the pool discards it then.
                    with contextlib.suppress(Exception):
                        await listener.remove_listener(channel, wake)
        finally:
            await self.close()

    async def _publish_forever(self) -> None:
        while True:
            self._wake.clear()  # before reading, so a notify during the batch is not lost
            published = await self.publish_batch()
            if time.monotonic() - self._purged_at > PURGE_INTERVAL_S:
                await self.purge_published()
            if published < self.batch_size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.idle_interval)
