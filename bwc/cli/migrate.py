"""``bwc migrate --service NAME``: apply a service's schema migrations, as the Kubernetes
migrations Job does before a rollout (the services then run with BWC_DATABASE_MIGRATE=false and
only check that their schema is current)."""

from __future__ import annotations

import argparse
import asyncio
import importlib
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

from bwc.db import create_pool, migrate
from bwc.settings import CommonSettings

SERVICES = ("ingest", "catalog", "review", "retention")


class MigrateSettings(BaseSettings):
    """Only what migrating needs: the Job gets no S3 or Kafka credentials, which the services'
    settings would demand in prod."""

    model_config = SettingsConfigDict(env_prefix="BWC_", extra="ignore")

    database_url: str = CommonSettings.model_fields["database_url"].default


def _schema_of(service: str) -> tuple[str, list[Path]]:
    # Each service's app module names its schema and migration folders (one home for both).
    app = importlib.import_module(f"services.{service}.app")
    return app.SCHEMA, app.MIGRATIONS


async def _migrate(services: list[str]) -> None:
    settings = MigrateSettings()
    pool = await create_pool(settings.database_url, size=1)
    try:
        for service in services:
            schema, sources = _schema_of(service)
            applied = await migrate(pool, schema=schema, sources=sources)
            print(f"{service}: {len(applied)} migration(s) applied"
                  + (f": {', '.join(applied)}" if applied else " (schema is current)"))
    finally:
        await pool.close()


def run(args: argparse.Namespace) -> int:
    asyncio.run(_migrate(list(dict.fromkeys(args.service))))
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("migrate", help="apply the schema migrations of services "
                                            "(BWC_DATABASE_URL)")
    parser.add_argument("--service", action="append", required=True, choices=SERVICES,
                        help="a service whose schema to migrate; repeat for several")
    parser.set_defaults(func=run)
