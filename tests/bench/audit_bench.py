"""``make bench``: the audit chain (R7), median of ``BWC_BENCH_REPEATS`` runs each.

1. **Outbox to chained row**: N audit events are written into an outbox (the shared
   ``bwc.outbox`` table, in a schema of the bench's own), then timed until every one is a row of
   ``catalog.audit_chain``: relay → ``audit.v1`` (3 partitions) → the real catalogue process
   (consumer, processed_events, head lock, insert trigger).
2. **Verify**: 1,000,000 entries seeded with COPY into a database of their own, then walked by
   the catalogue's ``verify`` (what ``GET /api/v1/audit/verify`` runs: server-side cursor,
   batches of 10,000) and by ``bwc audit verify`` over the same entries as an export file.
   Target: at least 100,000 entries/s.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import asyncpg

from bwc.audit_chain import GENESIS_HASH, Anchor, anchor_line, canonical, entry_line, link_hash
from bwc.cli.main import main as bwc
from bwc.db import create_pool, migrate
from bwc.devstack import infra
from bwc.devstack.stack import Stack, StackConfig
from bwc.events import Topic
from bwc.kafka import make_producer
from bwc.outbox import OUTBOX_MIGRATIONS, OutboxRelay, enqueue
from bwc.settings import CommonSettings
from services.catalog import app as catalog_app
from services.catalog import audit_chain
from tests.fixtures.events import audit_event

EVENTS = int(os.environ.get("BWC_BENCH_AUDIT_EVENTS", "2000"))
ENTRIES = int(os.environ.get("BWC_BENCH_VERIFY_ENTRIES", "1000000"))
REPEATS = int(os.environ.get("BWC_BENCH_REPEATS", "3"))
TARGET = 100_000  # entries/s
#: The template event's id, replaced by each entry's own (the database derives the unique
#: event_id from canonical).
TEMPLATE_ID = "ffffffff-ffff-4fff-bfff-ffffffffffff"
OUTBOX_SCHEMA = "audit_bench"


async def _chained(conn: asyncpg.Connection, actor: str) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM catalog.audit_chain WHERE actor = $1", actor)
    return count


async def outbox_to_chain(stack: Stack) -> list[float]:
    """Events per second from outbox rows to chained rows, one figure per repeat."""
    settings = CommonSettings(kafka_bootstrap=stack.env["BWC_KAFKA_BOOTSTRAP"])
    pool = await create_pool(stack.env["BWC_DATABASE_URL"], size=4)
    relay = OutboxRelay(pool, schema=OUTBOX_SCHEMA, batch_size=500,
                        producer_factory=partial(make_producer, settings, client_id="bench"))
    rates = []
    try:
        await migrate(pool, schema=OUTBOX_SCHEMA, sources=[OUTBOX_MIGRATIONS])
        relaying = asyncio.create_task(relay.run())
        # Warm-up: the catalogue's audit consumer group has joined once one event is chained.
        await _write_and_wait(pool, 1, f"warm-{uuid.uuid4().hex[:6]}", timeout=120)
        for _ in range(REPEATS):
            actor = f"bench-{uuid.uuid4().hex[:6]}"
            rates.append(EVENTS / await _write_and_wait(pool, EVENTS, actor, timeout=600))
        relaying.cancel()
        await asyncio.gather(relaying, return_exceptions=True)
    finally:
        await pool.close()
    return rates


async def _write_and_wait(pool: asyncpg.Pool, count: int, actor: str, *, timeout: float) -> float:
    events = [audit_event(actor=actor, recording_id=uuid.uuid4()) for _ in range(count)]
    started = time.perf_counter()
    async with pool.acquire() as conn:
        async with conn.transaction():
            for event in events:
                await enqueue(conn, schema=OUTBOX_SCHEMA, topic=Topic.AUDIT, key=event.id,
                              event=event)
        while await _chained(conn, actor) < count:
            if time.perf_counter() - started > timeout:
                raise TimeoutError(f"{await _chained(conn, actor)} of {count} chained")
            await asyncio.sleep(0.02)
    return time.perf_counter() - started


async def append_direct(url: str) -> list[float]:
    """The append alone (one transaction per event, as the consumer commits), without Kafka:
    separates the database's share from the transport's."""
    rates = []
    conn = await asyncpg.connect(url)
    try:
        for _ in range(REPEATS):
            events = [audit_event(actor="bench-direct", recording_id=uuid.uuid4())
                      for _ in range(EVENTS)]
            started = time.perf_counter()
            for event in events:
                async with conn.transaction():
                    await audit_chain.append_event(conn, event)
            rates.append(EVENTS / (time.perf_counter() - started))
    finally:
        await conn.close()
    return rates


def _entries(count: int) -> Iterator[tuple[int, str, bytes, bytes, bytes]]:
    """(seq, event_id, canonical, prev_hash, hash) of a valid chain of realistic events. One
    event is canonicalised; the others differ in their (fixed-length) ids only, which keeps
    their bytes canonical without paying RFC 8785 in Python a million times."""
    template_event = audit_event(recording_id=uuid.UUID(int=0), actor="bench")
    template_event.id = TEMPLATE_ID  # not the recording id's zeros: replaced below
    template = canonical(template_event.model_dump(mode="json"))
    prev = GENESIS_HASH
    for seq in range(1, count + 1):
        event_id = str(uuid.uuid4())
        body = template.replace(TEMPLATE_ID.encode(), event_id.encode(), 1)
        digest = link_hash(prev, body)
        yield seq, event_id, body, prev, digest
        prev = digest


async def seed(url: str, count: int, export: Path) -> None:
    """COPY ``count`` entries (triggers off for the load, as a restore would run) and write the
    same entries as an export file."""
    conn = await asyncpg.connect(url)
    occurred = datetime.now(UTC)
    try:
        await conn.execute("SET session_replication_role = replica")
        async with conn.transaction():
            with export.open("w", encoding="utf-8") as handle:
                handle.write(anchor_line(Anchor.genesis()) + "\n")
                entries = _entries(count)
                last: tuple[int, bytes] = (0, GENESIS_HASH)
                while chunk := [next(entries) for _ in range(min(50_000, count - last[0]))]:
                    await conn.copy_records_to_table(
                        "audit_chain", schema_name="catalog",
                        # The database derives the filter columns from canonical.
                        columns=["seq", "canonical", "prev_hash", "hash", "appended_at"],
                        records=[(s, b, p, h, occurred) for s, _, b, p, h in chunk])
                    handle.writelines(entry_line(s, p, h, b) + "\n" for s, _, b, p, h in chunk)
                    last = (chunk[-1][0], chunk[-1][4])
            await conn.execute("UPDATE catalog.audit_chain_head SET seq = $1, hash = $2,"
                               " appended_at = $3", last[0], last[1], occurred)
        await conn.execute("ANALYZE catalog.audit_chain")
    finally:
        await conn.close()


async def verify_in_database(url: str) -> list[float]:
    rates = []
    conn = await asyncpg.connect(url)
    try:
        for _ in range(REPEATS):
            started = time.perf_counter()
            result = await audit_chain.verify(conn)
            elapsed = time.perf_counter() - started
            assert result.first_broken is None and result.entries == ENTRIES, result
            rates.append(result.entries / elapsed)
    finally:
        await conn.close()
    return rates


def verify_offline(export: Path) -> tuple[list[float], list[float]]:
    """Wall-clock rates, and rates per CPU second of this process (what the machine's other
    load cannot take away: the walk is single-threaded and CPU-bound)."""
    rates, cpu_rates = [], []
    for _ in range(REPEATS):
        started, cpu_started = time.perf_counter(), time.process_time()
        assert bwc(["audit", "verify", str(export)]) == 0
        rates.append(ENTRIES / (time.perf_counter() - started))
        cpu_rates.append(ENTRIES / (time.process_time() - cpu_started))
    return rates, cpu_rates


def _report(name: str, rates: list[float], unit: str, target: float | None = None) -> None:
    verdict = "" if target is None else \
        ("  (target >= {:,.0f}: {})".format(target, "met" if min(rates) >= target else "MISSED"))
    print(f"{name:<44} median {statistics.median(rates):>10,.0f} {unit}   "
          f"runs: {', '.join(f'{r:,.0f}' for r in rates)}{verdict}")


def main() -> None:
    var = Path(tempfile.mkdtemp(prefix="bwc-audit-bench-"))
    database = f"bwc_bench_{uuid.uuid4().hex[:8]}"
    verify_db = f"{database}_verify"
    stack = Stack(StackConfig.on_free_ports(var, database, extra_env={"BWC_LOG_LEVEL": "WARNING"}))
    try:
        stack.start_infra()
        stack.start_service("catalog")
        print(f"audit chain bench: {EVENTS} events per run, {ENTRIES:,} entries to verify, "
              f"median of {REPEATS}")
        _report(f"outbox -> chained row ({EVENTS} events)",
                asyncio.run(outbox_to_chain(stack)), "events/s")
        _report(f"append alone, no Kafka ({EVENTS} events)",
                asyncio.run(append_direct(stack.env["BWC_DATABASE_URL"])), "events/s")
        asyncio.run(infra.create_database(stack.server_url, verify_db))
        url = infra.with_database(stack.server_url, verify_db)
        asyncio.run(_migrate_catalog(url))
        export = var / "chain.jsonl"
        started = time.perf_counter()
        asyncio.run(seed(url, ENTRIES, export))
        print(f"(seeded {ENTRIES:,} entries with COPY in {time.perf_counter() - started:.1f} s; "
              f"export file {export.stat().st_size / 2**20:,.0f} MiB)")
        _report("verify in the database (API's walk)", asyncio.run(verify_in_database(url)),
                "entries/s", TARGET)
        offline, offline_cpu = verify_offline(export)
        _report("bwc audit verify (offline, export file)", offline, "entries/s", TARGET)
        _report("  the same per CPU second of the verifier", offline_cpu, "entries/s")
        print(f"(load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    finally:
        stack.stop()
        if stack.server_url:
            for name in (database, verify_db):
                asyncio.run(infra.drop_database(stack.server_url, name))
        shutil.rmtree(var, ignore_errors=True)


async def _migrate_catalog(url: str) -> None:
    pool = await create_pool(url, size=1)
    try:
        await migrate(pool, schema=catalog_app.SCHEMA, sources=catalog_app.MIGRATIONS)
    finally:
        await pool.close()


if __name__ == "__main__":
    main()
