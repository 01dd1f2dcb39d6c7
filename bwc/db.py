"""Postgres access: the connection pool and the per-service migration runner.

Each service owns one schema and keeps its migrations as numbered ``.sql`` files in its own
``migrations/`` folder. Migrations run under an advisory lock, so several replicas starting
together apply each file exactly once: at start-up by default, or from ``bwc migrate`` (the
Kubernetes migrations Job) before a rollout, in which case a service only checks that its
schema is current (``check_schema``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

import asyncpg

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

log = logging.getLogger(__name__)

#: What repositories take: a plain connection or one borrowed from the pool.
Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(dsn: str, *, size: int) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn, min_size=1, max_size=size, init=_init_connection, command_timeout=60
    )
    assert pool is not None
    return pool


async def migrate(pool: asyncpg.Pool, *, schema: str, sources: list[Path]) -> list[str]:
    """Apply the not yet applied ``NNN_name.sql`` files of one schema, folder by folder.

    A file is recorded as ``<folder>/<file>``, so a shared folder (the outbox) and the
    service's own folder never collide.
    """
    applied: list[str] = []
    files = _migration_files(sources)
    async with pool.acquire() as conn, conn.transaction():
        # One lock per schema: replicas of one service serialise, different services don't.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"migrate:{schema}")
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await conn.execute(
            f'CREATE TABLE IF NOT EXISTS "{schema}".schema_migrations ('
            " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {
            r["name"]
            for r in await conn.fetch(f'SELECT name FROM "{schema}".schema_migrations')
        }
        for name, path in files:
            if name in done:
                continue
            await conn.execute(f'SET LOCAL search_path TO "{schema}"')
            await conn.execute(path.read_text())
            await conn.execute(
                f'INSERT INTO "{schema}".schema_migrations (name) VALUES ($1)', name
            )
            applied.append(name)
    if applied:
        log.info("applied migrations", extra={"schema": schema, "migrations": applied})
    return applied


class SchemaNotCurrentError(RuntimeError):
    """The schema lacks migrations this code needs; ``bwc migrate`` has not run yet."""


def _migration_files(sources: list[Path]) -> list[tuple[str, Path]]:
    return [(f"{d.name}/{f.name}", f) for d in sources for f in sorted(d.glob("*.sql"))]


async def check_schema(pool: asyncpg.Pool, *, schema: str, sources: list[Path]) -> None:
    """Refuse to run against a schema that lacks any of this code's migrations."""
    async with pool.acquire() as conn:
        table = await conn.fetchval("SELECT to_regclass($1)", f'"{schema}".schema_migrations')
        done = set() if table is None else {
            r["name"] for r in await conn.fetch(f'SELECT name FROM "{schema}".schema_migrations')}
    pending = [name for name, _ in _migration_files(sources) if name not in done]
    if pending:
        raise SchemaNotCurrentError(
            f"schema {schema} lacks the migrations {pending}: run `bwc migrate --service "
            f"{schema}` (the migrations Job) before this version starts, or set "
            "BWC_DATABASE_MIGRATE=true to migrate at start-up")
