"""``make run`` is consistent across restarts (issue 11): with an in-memory broker and S3
endpoint the database starts empty unless kept on request, and a broker on a persistent S3
endpoint keeps its topics."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bwc.devstack import infra
from bwc.devstack.processes import ProcessGroup, free_port
from bwc.devstack.stack import Stack, StackConfig


async def _execute(url: str, sql: str) -> object:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


def _restart(var_dir: Path, database: str, *, keep: bool) -> Stack:
    stack = Stack(StackConfig.on_free_ports(var_dir, database, keep_database=keep))
    stack.start_infra()
    return stack


@pytest.mark.parametrize("keep", [False, True])
def test_in_memory_stack_empties_the_database_unless_kept(tmp_path: Path, keep: bool) -> None:
    """The defect: Postgres kept recordings whose bytes (moto) and events (Tansu) were gone."""
    database = f"bwc_test_restart_{uuid.uuid4().hex[:8]}"
    first = _restart(tmp_path, database, keep=False)
    try:
        assert "moto" in first.summary["s3"]  # the in-memory endpoint this test is about
        asyncio.run(_execute(first.env["BWC_DATABASE_URL"],
                             "CREATE TABLE left_over AS SELECT 1 AS x"))
    finally:
        first.stop()
    second = _restart(tmp_path, database, keep=keep)
    try:
        exists = asyncio.run(_execute(second.env["BWC_DATABASE_URL"],
                                      "SELECT to_regclass('left_over') IS NOT NULL"))
        assert exists is keep
        assert ("kept on request" if keep else "emptied") in second.summary["postgres"]
    finally:
        second.stop()
        asyncio.run(infra.drop_database(second.server_url, database))


async def _topics(bootstrap: str, create: str | None = None) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        if create:
            await admin.create_topics([NewTopic(create, 1, 1)])
        return await admin.list_topics()
    finally:
        await admin.close()


def test_broker_on_s3_keeps_its_topics_across_a_restart(tmp_path: Path) -> None:
    """What `make run` does with a persistent S3 endpoint (MinIO): Tansu stores topics in a
    bucket there. Shown against moto, which stays up while the broker restarts."""
    group = ProcessGroup(tmp_path / "log")
    try:
        s3 = infra.start_s3(group, free_port(), tmp_path / "s3")
        Stack._create_bucket(s3, infra.BROKER_BUCKET, object_lock=False)
        port = free_port()
        bootstrap = infra.start_broker(group, port, storage=s3)
        asyncio.run(_topics(bootstrap, create="kept.v1"))
        broker = next(c for c in group.children if c.name == "broker")
        broker.stop()
        group.children.remove(broker)
        bootstrap = infra.start_broker(group, port, storage=s3)
        assert "kept.v1" in asyncio.run(_topics(bootstrap))
    finally:
        group.stop_all()
