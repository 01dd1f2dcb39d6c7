"""What every service app is made of: infrastructure clients, middleware, error handlers.

A service's ``app.py`` calls ``build_app`` with its routers and a lifespan that opens the
clients it needs through ``open_database`` / ``open_object_store``; clients live on
``app.state`` for the lifetime of the process and are never created at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import asyncpg
from fastapi import APIRouter, FastAPI

from bwc.auth import JwksVerifier
from bwc.db import create_pool, migrate
from bwc.observability import ReadinessCheck, install_request_middleware, operations_router
from bwc.problems import install_problem_handlers
from bwc.routing import install_routing
from bwc.s3 import ObjectStore, make_client
from bwc.settings import CommonSettings

log = logging.getLogger(__name__)


def build_app(
    *,
    title: str,
    description: str,
    settings: CommonSettings,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]],
    routers: list[APIRouter],
    uses_object_store: bool,
) -> FastAPI:
    """The app skeleton. The lifespan must put ``pool`` (and ``store`` when
    ``uses_object_store``) on ``app.state``; ``/readyz`` checks exactly those plus Kafka."""
    app = FastAPI(title=title, description=description, version="1.0.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.verifier = JwksVerifier(
        settings.auth_jwks_url, issuer=settings.auth_issuer, audience=settings.auth_audience,
        leeway=settings.auth_leeway.total_seconds(),
    )
    install_problem_handlers(app)
    install_request_middleware(app)
    app.include_router(operations_router(_readiness_checks(app, settings, uses_object_store)))
    for router in routers:
        app.include_router(router)
    install_routing(app)
    return app


@contextlib.asynccontextmanager
async def open_database(
    settings: CommonSettings, *, schema: str, migrations: list[Path]
) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(settings.database_url, size=settings.database_pool_size)
    try:
        await migrate(pool, schema=schema, sources=migrations)
        yield pool
    finally:
        await pool.close()


def open_object_store(settings: CommonSettings) -> ObjectStore:
    client = make_client(
        settings.s3_endpoint,
        access_key=settings.s3_access_key,
        secret_key=settings.s3_secret_key,
        region=settings.s3_region,
        ca_file=settings.s3_ca_file,
    )
    return ObjectStore(client, settings.s3_bucket)


def _readiness_checks(
    app: FastAPI, settings: CommonSettings, uses_object_store: bool
) -> dict[str, ReadinessCheck]:
    async def database() -> None:
        await app.state.pool.fetchval("SELECT 1")

    async def kafka() -> None:
        """The first bootstrap broker accepts TCP connections."""
        first = urlparse(f"//{settings.kafka_bootstrap.split(',')[0]}")
        _, writer = await asyncio.open_connection(first.hostname, first.port or 9092)
        writer.close()
        await writer.wait_closed()

    async def object_store() -> None:
        await app.state.store.ping()

    checks: dict[str, ReadinessCheck] = {"database": database, "kafka": kafka}
    if uses_object_store:
        checks["object_store"] = object_store
    return checks


@contextlib.asynccontextmanager
async def background(
    *tasks: tuple[str, Callable[[], Coroutine[Any, Any, None]]],
) -> AsyncIterator[None]:
    """Run long-lived loops for the lifetime of the app; cancel them on shutdown."""
    running = [asyncio.create_task(fn(), name=name) for name, fn in tasks]
    for task in running:
        task.add_done_callback(_log_crash)
    try:
        yield
    finally:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background task crashed", exc_info=task.exception(),
                  extra={"task": task.get_name()})
