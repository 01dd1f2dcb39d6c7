"""Review service app: its view of ``recordings.v1`` (consumer), the APIs reviewers and
supervisors work with (media, holds, reviews, judicial confirmations, export), and the relay of
its outbox (``recordings.v1`` changes and ``audit.v1`` entries)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from bwc.consumer import CONSUMER_MIGRATIONS
from bwc.events import Topic
from bwc.logs import configure_logging
from bwc.outbox import OUTBOX_MIGRATIONS
from bwc.service import (
    background,
    build_app,
    open_database,
    open_object_store,
    outbox_relay_task,
)
from services.review import consumers, export_api, holds_api, media_api
from services.review.catalog_client import CatalogClient
from services.review.config import ReviewSettings
from services.review.events import SCHEMA

MIGRATIONS = [Path(__file__).parent / "migrations", CONSUMER_MIGRATIONS, OUTBOX_MIGRATIONS]


def create_app(settings: ReviewSettings | None = None) -> FastAPI:
    settings = settings or ReviewSettings()
    configure_logging("review", settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.store = open_object_store(settings)
        app.state.catalog = CatalogClient(settings.review_catalog_url,
                                          settings.review_catalog_token_file)
        try:
            async with open_database(settings, schema=SCHEMA, migrations=MIGRATIONS) as pool:
                app.state.pool = pool
                consumer = consumers.recordings_consumer(pool, settings, schema=SCHEMA)
                async with background(
                    app,
                    ("recordings-consumer", consumer.run),
                    outbox_relay_task(settings, pool, schema=SCHEMA,
                                      topics=[Topic.RECORDINGS, Topic.AUDIT],
                                      client_id="bwc-review"),
                ):
                    yield
        finally:
            await app.state.catalog.aclose()

    return build_app(
        title="bwc review",
        description="Reviewers view media, hold evidence (R3) and export it; supervisors "
                    "release holds (R4) and record judicial confirmations (R8). Every access "
                    "is audited (R7).",
        settings=settings, lifespan=lifespan,
        routers=[media_api.router, holds_api.router, export_api.router],
        uses_object_store=True,
    )
