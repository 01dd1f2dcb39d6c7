"""The audit helper (``bwc.audit``, R7): one entry in the outbox, in the caller's transaction
or not at all; a database that cannot take it is 503, and nothing of the change is kept."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest

from bwc import audit
from bwc.audit import Actor
from bwc.auth import Principal, Role
from bwc.db import create_pool, migrate
from bwc.devstack.processes import free_port
from bwc.devstack.stack import Stack
from bwc.events import AuditAction, AuditService, CloudEvent, Topic
from bwc.logs import request_id_var
from bwc.outbox import OUTBOX_MIGRATIONS
from bwc.problems import Problem
from tests.fixtures.audit_outbox import outbox_entries


@pytest.fixture
async def scratch(stack: Stack) -> AsyncIterator[tuple[asyncpg.Pool, str]]:
    """A schema of its own with the shared outbox and a table to change, so no service's
    relay publishes what these tests write."""
    schema = f"audit_test_{uuid.uuid4().hex[:8]}"
    pool = await create_pool(stack.env["BWC_DATABASE_URL"], size=3)
    try:
        await migrate(pool, schema=schema, sources=[OUTBOX_MIGRATIONS])
        await pool.execute(f'CREATE TABLE "{schema}".things (name text PRIMARY KEY)')
        yield pool, schema
    finally:
        await pool.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await pool.close()


ALICE = Actor("alice", "admin")


async def test_refuses_to_run_outside_a_transaction(
    scratch: tuple[asyncpg.Pool, str],
) -> None:
    pool, schema = scratch
    async with pool.acquire() as conn:
        with pytest.raises(RuntimeError, match="inside the transaction"):
            await audit.record(conn, schema=schema, service=AuditService.INGEST, actor=ALICE,
                               action=AuditAction.DEVICE_CHANGED, subject="device:cam-1")
        assert await conn.fetchval(f'SELECT count(*) FROM "{schema}".outbox') == 0


async def test_writes_one_event_with_the_request_id_of_the_request(
    scratch: tuple[asyncpg.Pool, str],
) -> None:
    pool, schema = scratch
    recording_id = uuid.uuid4()
    token = request_id_var.set("req-from-middleware")
    try:
        async with pool.acquire() as conn, conn.transaction():
            event = await audit.record(
                conn, schema=schema, service=AuditService.CATALOG,
                actor=Actor.of(Principal("rita", frozenset({Role.REVIEWER})), Role.REVIEWER),
                action=AuditAction.VIEW_METADATA, recording_id=recording_id,
                purpose="checking a complaint", details={"result": "shown"})
    finally:
        request_id_var.reset(token)
    async with pool.acquire() as conn:
        [row] = await outbox_entries(conn, schema, "req-from-middleware")
        topic = await conn.fetchval(f'SELECT topic FROM "{schema}".outbox')
    assert topic == Topic.AUDIT.value
    assert row["key"] == str(recording_id)  # one recording's entries stay in order
    stored = CloudEvent.model_validate(row["payload"])
    assert stored.id == event.id
    assert stored.source == "/bwc/catalog"
    assert stored.subject == str(recording_id)
    assert stored.data["actor"] == "rita"
    assert stored.data["role"] == "reviewer"
    assert stored.data["action"] == "view_metadata"
    assert stored.data["recording_id"] == str(recording_id)
    assert stored.data["purpose"] == "checking a complaint"
    assert stored.data["details"] == {"result": "shown"}
    assert stored.data["source_service"] == "catalog"


async def test_an_automatic_step_is_recorded_as_the_service_in_the_role_system(
    scratch: tuple[asyncpg.Pool, str],
) -> None:
    pool, schema = scratch
    async with pool.acquire() as conn, conn.transaction():
        event = await audit.record(
            conn, schema=schema, service=AuditService.RETENTION,
            actor=Actor.system(AuditService.RETENTION), action=AuditAction.DELETION,
            recording_id=uuid.uuid4(), request_id="sweep-1")
    assert (event.data["actor"], event.data["role"]) == ("retention", "system")
    assert event.data["request_id"] == "sweep-1"


async def test_a_rolled_back_change_leaves_no_entry(scratch: tuple[asyncpg.Pool, str]) -> None:
    pool, schema = scratch
    with pytest.raises(Problem):
        async with audit.transaction(pool) as conn:
            await conn.execute(f'INSERT INTO "{schema}".things VALUES ($1)', "thing")
            await audit.record(conn, schema=schema, service=AuditService.INGEST, actor=ALICE,
                               action=AuditAction.DEVICE_REGISTERED, subject="device:thing")
            raise Problem(409, "Conflict", "raised after the entry")
    assert await pool.fetchval(f'SELECT count(*) FROM "{schema}".outbox') == 0
    assert await pool.fetchval(f'SELECT count(*) FROM "{schema}".things') == 0


async def test_a_missing_outbox_is_503_and_the_change_is_not_kept(
    scratch: tuple[asyncpg.Pool, str],
) -> None:
    pool, schema = scratch
    await pool.execute(f'ALTER TABLE "{schema}".outbox RENAME TO outbox_away')
    with pytest.raises(Problem) as refused:
        async with audit.transaction(pool) as conn:
            await conn.execute(f'INSERT INTO "{schema}".things VALUES ($1)', "thing")
            await audit.record(conn, schema=schema, service=AuditService.INGEST, actor=ALICE,
                               action=AuditAction.DEVICE_REGISTERED, subject="device:thing")
    assert refused.value.status == 503
    assert "Retry-After" in refused.value.headers
    assert await pool.fetchval(f'SELECT count(*) FROM "{schema}".things') == 0


async def test_a_locked_outbox_is_503_after_the_lock_timeout_not_a_hang(
    scratch: tuple[asyncpg.Pool, str],
) -> None:
    pool, schema = scratch
    async with pool.acquire() as locker, locker.transaction():
        await locker.execute(f'LOCK TABLE "{schema}".outbox IN ACCESS EXCLUSIVE MODE')

        async def audited() -> None:
            async with audit.transaction(pool, lock_timeout=timedelta(seconds=0.3)) as conn:
                await audit.record(conn, schema=schema, service=AuditService.CATALOG,
                                   actor=ALICE, action=AuditAction.SEARCH)

        with pytest.raises(Problem) as refused:
            # The pool's command timeout is a minute; the lock timeout ends it long before.
            await asyncio.wait_for(audited(), timeout=20)
    assert refused.value.status == 503


async def test_a_row_locked_too_long_is_503_busy_not_audit_log_unavailable(
    scratch: tuple[asyncpg.Pool, str],
) -> None:
    """Regression: a hold placement waiting behind another one (which holds the recording's
    row while it talks to S3) was told "Audit log unavailable", as if the database were
    broken. It is busy: 503 that says so, with Retry-After, and nothing kept."""
    pool, schema = scratch
    await pool.execute(f'INSERT INTO "{schema}".things VALUES ($1)', "held")
    async with pool.acquire() as locker, locker.transaction():
        await locker.execute(f'SELECT * FROM "{schema}".things FOR UPDATE')

        async def audited() -> None:
            async with audit.transaction(pool, lock_timeout=timedelta(seconds=0.3)) as conn:
                await audit.record(conn, schema=schema, service=AuditService.REVIEW,
                                   actor=ALICE, action=AuditAction.HOLD_PLACED)
                await conn.execute(f'SELECT * FROM "{schema}".things FOR UPDATE')

        with pytest.raises(Problem) as refused:
            await asyncio.wait_for(audited(), timeout=20)
    assert refused.value.status == 503
    assert refused.value.title == "Busy: locked by another request"
    assert "0.3 s" in refused.value.detail and "Retry-After" in refused.value.headers
    assert await pool.fetchval(f'SELECT count(*) FROM "{schema}".outbox') == 0


async def test_a_failure_of_the_callers_own_that_is_no_database_error_passes_through(
    scratch: tuple[asyncpg.Pool, str],
) -> None:
    """An object store that is away (review, retention) is the caller's to report, not
    "audit log unavailable"."""
    pool, _ = scratch
    with pytest.raises(ConnectionRefusedError):
        async with audit.transaction(pool):
            raise ConnectionRefusedError("object store away")


async def test_an_unreachable_database_is_503() -> None:
    # min_size=0: the pool connects on the first acquire, to a port nothing listens on.
    pool = await asyncpg.create_pool(f"postgresql://postgres@127.0.0.1:{free_port()}/bwc",
                                     min_size=0, max_size=1)
    try:
        with pytest.raises(Problem) as refused:
            async with audit.transaction(pool):
                pytest.fail("no connection, no block")
        assert refused.value.status == 503
        assert isinstance(refused.value.__cause__, OSError)
    finally:
        await pool.close()


def test_actor_is_the_strongest_granting_role() -> None:
    both = Principal("sam", frozenset({Role.OFFICER, Role.SUPERVISOR}))
    assert Actor.of(both, Role.SUPERVISOR, Role.REVIEWER, Role.OFFICER) == Actor(
        "sam", "supervisor")
    with pytest.raises(ValueError, match="none of the roles"):
        Actor.of(both, Role.AUDITOR)


def test_key_spreads_by_recording_then_subject_then_actor() -> None:
    recording_id = uuid.uuid4()
    assert audit.audit_key(recording_id=recording_id, subject="device:x",
                           actor=ALICE) == str(recording_id)
    assert audit.audit_key(recording_id=None, subject="device:x", actor=ALICE) == "device:x"
    assert audit.audit_key(recording_id=None, subject=None, actor=ALICE) == "actor:alice"
