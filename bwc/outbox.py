"""Transactional outbox: write events with the state change, publish them afterwards.

``enqueue`` runs inside the caller's transaction. ``OutboxRelay`` publishes pending rows in
order. Only one relay per schema publishes at a time (an advisory lock), so the order of events
for one recording is the order of their commits, whatever the number of replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaProducer

from bwc.db import Connection
from bwc.events import CloudEvent, Topic

log = logging.getLogger(__name__)

PURGE_INTERVAL_S = 600.0

#: Migration folder every event-producing service adds to its own schema.
OUTBOX_MIGRATIONS = Path(__file__).parent / "sql" / "outbox"


async def enqueue(
    conn: Connection, *, schema: str, topic: Topic, key: str, event: CloudEvent
) -> None:
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
        backoff = 0.5
        listener = await self.pool.acquire()
        try:
            await listener.add_listener(f"{self.schema}_outbox", lambda *_: self._wake.set())
            while True:
                try:
                    published = await self.publish_batch()
                    backoff = 0.5
                    if time.monotonic() - self._purged_at > PURGE_INTERVAL_S:
                        await self.purge_published()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("outbox publish failed; retrying", extra={"error": repr(exc),
                                "retry_in_s": backoff})
                    await self.close()
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 10.0)
                    continue
                if published < self.batch_size:
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self.idle_interval)
        finally:
            await self.pool.release(listener)
            await self.close()
