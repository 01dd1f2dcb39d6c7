"""Catalogue service app: the recordings.v1 consumer, the read APIs, the relay of their
audit entries (``audit.v1``, R7) and the audit chain (audit.v1 consumer, retention step)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

from fastapi import FastAPI

from bwc.consumer import CONSUMER_MIGRATIONS
from bwc.events import Topic
from bwc.logs import configure_logging
from bwc.outbox import OUTBOX_MIGRATIONS
from bwc.service import background, build_app, open_database, outbox_relay_task
from services.catalog import api, audit_api, audit_chain, consumers, projection_purge
from services.catalog.config import CatalogSettings

SCHEMA = "catalog"
#: The shared outbox (``outbox/001_outbox.sql``) carries the audit entries of the reads.
MIGRATIONS = [Path(__file__).parent / "migrations", CONSUMER_MIGRATIONS, OUTBOX_MIGRATIONS]


def create_app(settings: CatalogSettings | None = None) -> FastAPI:
    settings = settings or CatalogSettings()
    configure_logging("catalog", settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_database(settings, schema=SCHEMA, migrations=MIGRATIONS) as pool:
            app.state.pool = pool
            consumer = consumers.recordings_consumer(pool, settings, schema=SCHEMA)
            audit_consumer = audit_chain.audit_consumer(pool, settings, schema=SCHEMA)
            audit_retention = audit_chain.retention_task(
                pool, interval=settings.catalog_audit_retention_interval)
            async with background(
                app,
                ("recordings-consumer", consumer.run),
                ("pending-purge", partial(projection_purge.run, pool,
                                          settings.catalog_pending_purge_interval)),
                outbox_relay_task(settings, pool, schema=SCHEMA, topics=[Topic.AUDIT],
                                  client_id="bwc-catalog"),
                ("audit-consumer", audit_consumer.run),
                ("audit-retention", audit_retention),
            ):
                yield

    return build_app(
        title="bwc catalog",
        description="Indexes recordings from Kafka and serves their metadata; keeps the "
                    "hash-chained audit log (R7).",
        settings=settings, lifespan=lifespan, routers=[api.router, audit_api.router],
        uses_object_store=False,
    )
