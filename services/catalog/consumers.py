"""The catalogue's consumer of ``recordings.v1``: the projection (``projection.py``) on the
shared ``bwc.consumer.EventConsumer`` (at-least-once, idempotent by event id, poison messages
parked)."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from bwc.consumer import EventConsumer, Handler
from bwc.events import Topic
from services.catalog.config import CatalogSettings
from services.catalog.projection import EVENT_TYPES, Projection


def handlers(settings: CatalogSettings) -> dict[str, Handler]:
    projection = Projection(retention_period=settings.retention_period)
    return {event_type.value: projection.apply for event_type in EVENT_TYPES}


def recordings_consumer(
    pool: asyncpg.Pool, settings: CatalogSettings, *, schema: str,
    topics: Sequence[Topic] = (Topic.RECORDINGS,), group_id: str | None = None,
) -> EventConsumer:
    """``topics`` and ``group_id`` differ only in the replay tests (a fresh topic each)."""
    return EventConsumer(
        pool, settings, schema=schema, topics=topics,
        group_id=group_id or settings.catalog_consumer_group, client_id="bwc-catalog",
        handlers=handlers(settings))
