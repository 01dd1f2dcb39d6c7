"""Review's consumer of ``recordings.v1`` (``projection.py``) on the shared
``bwc.consumer.EventConsumer``: at-least-once, idempotent by event id, poison messages
parked."""

from __future__ import annotations

import asyncpg

from bwc.consumer import EventConsumer, Handler
from bwc.events import Topic
from services.review.config import ReviewSettings
from services.review.projection import EVENT_TYPES, Projection


def handlers(settings: ReviewSettings) -> dict[str, Handler]:
    projection = Projection(retention_period=settings.retention_period)
    return {event_type.value: projection.apply for event_type in EVENT_TYPES}


def recordings_consumer(
    pool: asyncpg.Pool, settings: ReviewSettings, *, schema: str
) -> EventConsumer:
    return EventConsumer(
        pool, settings, schema=schema, topics=[Topic.RECORDINGS],
        group_id=settings.review_consumer_group, client_id="bwc-review",
        handlers=handlers(settings))
