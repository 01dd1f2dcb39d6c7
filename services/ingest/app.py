"""Ingest service app: tus endpoint, device registry, outbox relay and upload janitor."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

from fastapi import FastAPI

from bwc.events import Topic
from bwc.logs import configure_logging
from bwc.outbox import OUTBOX_MIGRATIONS
from bwc.s3 import make_multipart
from bwc.service import (
    background,
    build_app,
    open_database,
    open_object_store,
    outbox_relay_task,
)
from services.ingest import api, janitor, tus
from services.ingest.config import IngestSettings
from services.ingest.protocol import install_tus_headers
from services.ingest.store import S3UploadStore

SCHEMA = "ingest"
MIGRATIONS = [OUTBOX_MIGRATIONS, Path(__file__).parent / "migrations"]


def create_app(settings: IngestSettings | None = None) -> FastAPI:
    settings = settings or IngestSettings()
    configure_logging("ingest", settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = open_object_store(settings)
        await store.ensure_bucket()
        async with open_database(settings, schema=SCHEMA, migrations=MIGRATIONS) as pool:
            app.state.pool, app.state.store = pool, store
            upload_store = S3UploadStore(
                store, make_multipart(settings.s3_endpoint, access_key=settings.s3_access_key,
                                      secret_key=settings.s3_secret_key,
                                      region=settings.s3_region, bucket=settings.s3_bucket,
                                      ca_file=settings.s3_ca_file),
                part_size=settings.ingest_part_size,
                parts_in_flight=settings.ingest_parts_in_flight,
                memory_budget=settings.ingest_memory_budget,
                tail_cache=settings.ingest_tail_cache)
            app.state.upload_store = upload_store
            app.state.write_slots = asyncio.Semaphore(settings.ingest_max_concurrent_writes)
            app.state.device_writes = Counter()
            async with background(
                app,
                # The outbox also carries the device registry's audit entries (R7).
                outbox_relay_task(settings, pool, schema=SCHEMA,
                                  topics=[Topic.RECORDINGS, Topic.AUDIT], client_id="bwc-ingest"),
                ("upload-janitor",
                 partial(janitor.run, pool, upload_store, settings.ingest_janitor_interval,
                         recovery_grace=settings.ingest_recovery_grace)),
            ):
                yield

    app = build_app(
        title="bwc ingest",
        description="Devices push recordings over tus 1.0 (`/files/`); admins manage devices.",
        settings=settings, lifespan=lifespan, routers=[tus.router, api.router],
        uses_object_store=True,
    )
    install_tus_headers(app, tus.router.prefix)
    return app
