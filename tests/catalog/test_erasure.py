"""R5: every column of the projection's tables is classified as kept or erased on deletion
(services/catalog/erasure.py), so a new column cannot slip past the decision; and the
database itself refuses a deleted recording that still holds content."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from bwc.devstack.stack import Stack
from services.catalog.erasure import ERASED, KEPT
from tests.fixtures.catalog import catalog_database, catalog_settings, deliver, direct_consumer
from tests.fixtures.events import ingested_event


@pytest.fixture(scope="module")
async def pool(stack: Stack) -> AsyncIterator[asyncpg.Pool]:
    async with catalog_database(stack) as pool:
        yield pool


@pytest.mark.parametrize("table", sorted(KEPT))
async def test_every_column_is_kept_or_erased(pool: asyncpg.Pool, table: str) -> None:
    columns = {r["column_name"] for r in await pool.fetch(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = 'catalog' AND table_name = $1", table)}
    assert not set(KEPT[table]) & set(ERASED[table])
    assert columns == set(KEPT[table]) | set(ERASED[table])


async def test_the_database_refuses_a_deleted_recording_with_content(
    pool: asyncpg.Pool, stack: Stack
) -> None:
    rid = uuid.uuid4()
    await deliver(direct_consumer(pool, catalog_settings(stack)), ingested_event(rid))
    with pytest.raises(asyncpg.CheckViolationError):
        await pool.execute("UPDATE catalog.recordings SET status = 'deleted', deleted_at = now(),"
                           " deletion_reason = 'deadline' WHERE id = $1", rid)
