"""Review service app. Only operations endpoints so far; its features are separate issues."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from bwc.logs import configure_logging
from bwc.outbox import OUTBOX_MIGRATIONS
from bwc.service import build_app, open_database, open_object_store
from services.review.config import ReviewSettings

SCHEMA = "review"
MIGRATIONS = [OUTBOX_MIGRATIONS]


def create_app(settings: ReviewSettings | None = None) -> FastAPI:
    settings = settings or ReviewSettings()
    configure_logging("review", settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.store = open_object_store(settings)
        async with open_database(settings, schema=SCHEMA, migrations=MIGRATIONS) as pool:
            app.state.pool = pool
            yield

    return build_app(
        title="bwc review",
        description=("Reviewers view media, hold evidence and export it. "
                    "Features arrive with their own issues."),
        settings=settings, lifespan=lifespan, routers=[], uses_object_store=True,
    )
