"""``make run`` on a machine without a Postgres server falls back to the embedded one."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from bwc.devstack import infra
from bwc.devstack.processes import free_port


def test_embedded_postgres_when_no_server_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(infra, "LOCAL_POSTGRES", f"postgresql://postgres@127.0.0.1:{free_port()}/x")
    server_url, kind = infra.postgres_server(None, tmp_path / "pgdata")
    assert kind.startswith("embedded")
    database_url = infra.ensure_database(server_url, "bwc_fallback")

    async def query() -> int:
        conn = await asyncpg.connect(database_url)
        try:
            value: int = await conn.fetchval("SELECT 40 + 2")
            return value
        finally:
            await conn.close()

    assert asyncio.run(query()) == 42
