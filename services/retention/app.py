"""Retention service app. Only operations endpoints so far; its features are separate issues."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from bwc.logs import configure_logging
from bwc.outbox import OUTBOX_MIGRATIONS
from bwc.service import build_app, open_database, open_object_store
from services.retention.config import RetentionSettings

SCHEMA = "retention"
MIGRATIONS = [OUTBOX_MIGRATIONS]


def create_app(settings: RetentionSettings | None = None) -> FastAPI:
    settings = settings or RetentionSettings()
    configure_logging("retention", settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.store = open_object_store(settings)
        async with open_database(settings, schema=SCHEMA, migrations=MIGRATIONS) as pool:
            app.state.pool = pool
            yield

    return build_app(
        title="bwc retention",
        description=("Deletes recordings past their deadline (R2, R5). "
                    "Features arrive with their own issues."),
        settings=settings, lifespan=lifespan, routers=[], uses_object_store=True,
    )
