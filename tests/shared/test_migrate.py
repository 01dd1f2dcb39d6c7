"""The migrations Job (``bwc migrate``) runs before a rollout; a service started with
BWC_DATABASE_MIGRATE=false only checks its schema and refuses an outdated one (issue 11)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bwc.devstack import infra
from bwc.devstack.processes import ProcessGroup, free_port
from bwc.devstack.services import ServiceSpec, start_service
from bwc.devstack.stack import Stack
from services.catalog import app as catalog_app


@pytest.fixture
def empty_database(stack: Stack) -> Iterator[str]:
    name = f"bwc_test_migrate_{uuid.uuid4().hex[:8]}"
    url = infra.ensure_database(stack.server_url, name)
    try:
        yield url
    finally:
        asyncio.run(infra.drop_database(stack.server_url, name))


def env_for(stack: Stack, database_url: str) -> dict[str, str]:
    return {**stack.env, "BWC_DATABASE_URL": database_url, "BWC_DATABASE_MIGRATE": "false"}


def test_service_refuses_a_schema_the_migrations_job_has_not_prepared(
    stack: Stack, empty_database: str,
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "uvicorn", "services.catalog.app:create_app", "--factory",
         "--port", str(free_port())],
        env={**os.environ, **env_for(stack, empty_database)}, capture_output=True,
        text=True, timeout=30, check=False)
    assert result.returncode != 0
    assert "schema catalog lacks the migrations" in result.stderr
    assert "bwc migrate --service catalog" in result.stderr


def test_service_starts_after_bwc_migrate(
    stack: Stack, empty_database: str, tmp_path: Path,
) -> None:
    env = {**os.environ, **env_for(stack, empty_database)}
    migrated = subprocess.run(
        [sys.executable, "-m", "bwc.cli.main", "migrate", "--service", "catalog",
         "--service", "ingest"], env=env, capture_output=True, text=True, timeout=60,
        check=True)
    # Its own, the consumer's and the outbox's (audit entries, R7), however many by now.
    files = sorted(f"{m.parent.name}/{m.name}" for d in catalog_app.MIGRATIONS
                   for m in d.glob("*.sql"))
    assert f"catalog: {len(files)} migration(s) applied" in migrated.stdout
    assert all(f in migrated.stdout for f in files)
    again = subprocess.run(
        [sys.executable, "-m", "bwc.cli.main", "migrate", "--service", "catalog"], env=env,
        capture_output=True, text=True, timeout=60, check=True)
    assert "catalog: 0 migration(s) applied (schema is current)" in again.stdout
    group = ProcessGroup(tmp_path)
    try:
        # Waits for /readyz: start-up passed the schema check without migrating.
        start_service(group, ServiceSpec("catalog", free_port()), env, timeout=60)
    finally:
        group.stop_all()

