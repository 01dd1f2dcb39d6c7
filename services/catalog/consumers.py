"""The catalogue's consumer of ``recordings.v1``: event handlers on the shared
``bwc.consumer.EventConsumer`` (at-least-once, idempotent by event id, poison messages parked)."""

from __future__ import annotations

import asyncpg

from bwc.consumer import EventConsumer, Handler
from bwc.db import Connection
from bwc.deadline import deletion_deadline
from bwc.events import CloudEvent, EventType, RecordingIngestedV1, Topic
from services.catalog import repository as repo
from services.catalog.config import CatalogSettings


def handlers(settings: CatalogSettings) -> dict[str, Handler]:
    async def on_ingested(conn: Connection, event: CloudEvent) -> None:
        data = event.parsed_data()
        assert isinstance(data, RecordingIngestedV1)
        # R2: never later than this deployment's own retention period allows. "now" is the
        # upload time from the event, so a replay of the topic gives the same deadline.
        delete_after = min(data.delete_after, deletion_deadline(
            data.recorded_at, retention_period=settings.retention_period, now=data.uploaded_at))
        await repo.upsert_ingested(conn, data, delete_after=delete_after)

    return {EventType.RECORDING_INGESTED.value: on_ingested}


def recordings_consumer(
    pool: asyncpg.Pool, settings: CatalogSettings, *, schema: str
) -> EventConsumer:
    return EventConsumer(
        pool, settings, schema=schema, topics=[Topic.RECORDINGS],
        group_id=settings.catalog_consumer_group, client_id="bwc-catalog",
        handlers=handlers(settings))
