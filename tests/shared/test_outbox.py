"""The outbox keeps published events only briefly: they carry recording metadata (R5)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import asyncpg

from bwc.devstack.stack import Stack
from bwc.outbox import OutboxRelay


async def test_published_rows_are_purged_after_the_keep_period(
    stack: Stack, db: asyncpg.Connection
) -> None:
    old, recent, pending = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    for event_id, published in ((old, "now() - interval '2 days'"),
                                (recent, "now() - interval '1 hour'"), (pending, "NULL")):
        await db.execute(
            "INSERT INTO ingest.outbox (event_id, topic, key, payload, published_at)"
            f" VALUES ($1, 'recordings.v1', 'k', '{{}}', {published})", event_id)
    pool = await asyncpg.create_pool(stack.env["BWC_DATABASE_URL"], min_size=1, max_size=2)
    try:
        relay = OutboxRelay(pool, schema="ingest", producer_factory=lambda: None,  # type: ignore[arg-type, return-value]
                            keep_published=timedelta(days=1))
        assert await relay.purge_published() >= 1
    finally:
        await pool.close()
    remaining = {r["event_id"] for r in await db.fetch(
        "SELECT event_id FROM ingest.outbox WHERE event_id = ANY($1::uuid[])",
        [old, recent, pending])}
    assert remaining == {recent, pending}
