"""Catalogue service app: the recordings.v1 consumer, the audit chain (audit.v1 consumer,
retention step) and the read APIs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from bwc.consumer import CONSUMER_MIGRATIONS
from bwc.logs import configure_logging
from bwc.service import background, build_app, open_database
from services.catalog import api, audit_api, audit_chain, consumers
from services.catalog.config import CatalogSettings

SCHEMA = "catalog"
MIGRATIONS = [Path(__file__).parent / "migrations", CONSUMER_MIGRATIONS]


def create_app(settings: CatalogSettings | None = None) -> FastAPI:
    settings = settings or CatalogSettings()
    configure_logging("catalog", settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_database(settings, schema=SCHEMA, migrations=MIGRATIONS) as pool:
            app.state.pool = pool
            consumer = consumers.recordings_consumer(pool, settings, schema=SCHEMA)
            audit = audit_chain.audit_consumer(pool, settings, schema=SCHEMA)
            retention = audit_chain.retention_task(
                pool, interval=settings.catalog_audit_retention_interval)
            async with background(app, ("recordings-consumer", consumer.run),
                                  ("audit-consumer", audit.run),
                                  ("audit-retention", retention)):
                yield

    return build_app(
        title="bwc catalog",
        description="Indexes recordings from Kafka and serves their metadata; keeps the "
                    "hash-chained audit log (R7).",
        settings=settings, lifespan=lifespan, routers=[api.router, audit_api.router],
        uses_object_store=False,
    )
