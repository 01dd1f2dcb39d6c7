"""What every service app is made of: infrastructure clients, middleware, error handlers.

A service's ``app.py`` calls ``build_app`` with its routers and a lifespan that opens the
clients it needs through ``open_database`` / ``open_object_store``; clients live on
``app.state`` for the lifetime of the process and are never created at import time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from functools import partial
from pathlib import Path
from typing import Annotated
from urllib.parse import urlparse

import asyncpg
from fastapi import APIRouter, Depends, FastAPI, Request

from bwc.auth import JwksVerifier
from bwc.db import check_schema, create_pool, migrate
from bwc.events import Topic
from bwc.kafka import ensure_topics, make_producer
from bwc.observability import ReadinessCheck, install_request_middleware, operations_router
from bwc.outbox import OutboxRelay
from bwc.problems import install_problem_handlers
from bwc.routing import install_routing
from bwc.s3 import ObjectStore, make_client
from bwc.settings import CommonSettings
from bwc.shutdown import Shutdown
from bwc.supervisor import Supervisor, TaskFn


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
    ``uses_object_store``) on ``app.state`` and start its background work with ``background``;
    ``/readyz`` checks those, reports Kafka and every supervised task."""
    app = FastAPI(title=title, description=description, version="1.0.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.supervisor = Supervisor()
    #: Set on SIGTERM by ``bwc.serve``: readiness fails, long requests wind down.
    app.state.shutting_down = Shutdown()
    app.state.verifier = JwksVerifier(
        settings.auth_jwks_url, issuer=settings.auth_issuer, audience=settings.auth_audience,
        leeway=settings.auth_leeway.total_seconds(),
    )
    install_problem_handlers(app)
    install_request_middleware(app)
    app.include_router(operations_router(_readiness_checks(app, settings, uses_object_store),
                                         app.state.supervisor, app.state.shutting_down))
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
        if settings.database_migrate:
            await migrate(pool, schema=schema, sources=migrations)
        else:
            await check_schema(pool, schema=schema, sources=migrations)
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

    # Kafka is reported but never makes a service unready: producers write to their outbox,
    # which the relay publishes once the broker is back, and reads do not need the broker.
    checks = {"database": ReadinessCheck(database),
              "kafka": ReadinessCheck(kafka, required=False)}
    if uses_object_store:
        checks["object_store"] = ReadinessCheck(object_store)
    return checks


@contextlib.asynccontextmanager
async def background(app: FastAPI, *tasks: tuple[str, TaskFn]) -> AsyncIterator[None]:
    """Run long-lived loops under the app's supervisor for the lifetime of the app: a loop
    that fails is restarted with back-off and shows in ``/readyz`` (``bwc.supervisor``)."""
    supervisor: Supervisor = app.state.supervisor
    for name, fn in tasks:
        supervisor.start(name, fn)
    try:
        yield
    finally:
        await supervisor.stop()


def outbox_relay_task(
    settings: CommonSettings, pool: asyncpg.Pool, *, schema: str, topics: list[Topic],
    client_id: str,
) -> tuple[str, TaskFn]:
    """The supervised task that publishes ``schema``'s outbox. Each (re)start first makes sure
    the topics exist, so a broker that was away at start-up only delays the events."""
    relay = OutboxRelay(pool, schema=schema,
                        producer_factory=partial(make_producer, settings, client_id=client_id))

    async def run() -> None:
        await ensure_topics(settings, [t.value for t in topics])
        await relay.run()

    return "outbox-relay", run


def app_pool(request: Request) -> asyncpg.Pool:
    """The database pool the lifespan opened (``app.state.pool``)."""
    pool: asyncpg.Pool = request.app.state.pool
    return pool


#: A request's database pool; every service's handlers take it.
PoolDep = Annotated[asyncpg.Pool, Depends(app_pool)]
