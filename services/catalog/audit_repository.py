"""All SQL of the audit chain (R7). Functions take a connection; the caller owns the
transaction. The database itself keeps the chain append-only (migration 004)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from bwc.audit_chain import Anchor, link_hash
from bwc.db import Connection

ENTRY_COLUMNS = ("seq, event_id, canonical, prev_hash, hash, actor, action, recording_id,"
                 " occurred_at, appended_at")


@dataclass(frozen=True)
class NewEntry:
    """The database derives the filter columns (actor, action, …) from ``canonical``."""

    event_id: str
    canonical: bytes
    #: Normally unset: the database stamps the append (a test or a migration may backdate).
    appended_at: datetime | None = None


async def append(conn: Connection, entry: NewEntry) -> int | None:
    """Append ``entry`` after the head; returns its seq, or None when the event id is already
    chained. Must run in a transaction: the head stays locked until it commits, which puts
    concurrent appends (several replicas, several partitions) into one order."""
    if not conn.is_in_transaction():
        raise RuntimeError("append must run inside a transaction")
    head = await conn.fetchrow(
        "SELECT seq, hash FROM catalog.audit_chain_head FOR UPDATE")
    assert head is not None, "migration 004 creates the head row"
    if await conn.fetchval("SELECT true FROM catalog.audit_chain WHERE event_id = $1",
                           entry.event_id):
        return None
    seq: int = head["seq"] + 1
    prev_hash: bytes = head["hash"]
    await conn.execute(
        "INSERT INTO catalog.audit_chain (seq, canonical, prev_hash, hash, appended_at)"
        " VALUES ($1, $2, $3, $4, $5)",
        seq, entry.canonical, prev_hash, link_hash(prev_hash, entry.canonical),
        entry.appended_at)
    return seq


async def head(conn: Connection) -> tuple[int, bytes]:
    row = await conn.fetchrow("SELECT seq, hash FROM catalog.audit_chain_head")
    assert row is not None
    return row["seq"], row["hash"]


async def anchor(conn: Connection) -> tuple[Anchor, datetime | None]:
    """Where verification starts, and when the last prefix was pruned (None: never)."""
    row = await conn.fetchrow("SELECT seq, hash, pruned_at FROM catalog.audit_chain_anchor")
    if row is None:
        return Anchor.genesis(), None
    return Anchor(row["seq"], row["hash"]), row["pruned_at"]


async def chain_batches(
    conn: Connection, *, after_seq: int, batch_size: int
) -> AsyncIterator[list[tuple[int, bytes, bytes, bytes]]]:
    """(seq, prev_hash, hash, canonical) in seq order through a server-side cursor, so a
    chain of millions is walked in bounded memory. Needs a transaction."""
    cursor = await conn.cursor(
        "SELECT seq, prev_hash, hash, canonical FROM catalog.audit_chain WHERE seq > $1"
        " ORDER BY seq", after_seq)
    while rows := await cursor.fetch(batch_size):
        yield [(r[0], r[1], r[2], r[3]) for r in rows]


#: The columns the database derives from the canonical event for the auditors' filters
#: (migration 006: generated, so nobody can write them apart from the hashed bytes).
FILTER_COLUMNS = ("event_id", "actor", "action", "recording_id", "occurred_at")


async def filter_columns_generated(conn: Connection) -> bool:
    """Whether every filter column is still generated from ``canonical`` (only DDL, behind
    the database's back, makes one writable)."""
    generated: int = await conn.fetchval(
        "SELECT count(*) FROM pg_attribute WHERE attrelid = 'catalog.audit_chain'::regclass"
        " AND attname = ANY($1::text[]) AND attgenerated = 's' AND NOT attisdropped",
        list(FILTER_COLUMNS))
    return generated == len(FILTER_COLUMNS)


async def filter_column_batches(
    conn: Connection, *, after_seq: int, batch_size: int
) -> AsyncIterator[list[asyncpg.Record]]:
    """seq, canonical and the filter columns in seq order (server-side cursor)."""
    cursor = await conn.cursor(
        f"SELECT seq, canonical, {', '.join(FILTER_COLUMNS)} FROM catalog.audit_chain"
        " WHERE seq > $1 ORDER BY seq", after_seq)
    while rows := await cursor.fetch(batch_size):
        yield rows


@dataclass(frozen=True)
class AuditFilter:
    recording_id: uuid.UUID | None = None
    actor: str | None = None
    action: str | None = None
    occurred_from: datetime | None = None
    occurred_to: datetime | None = None


async def list_entries(
    conn: Connection, f: AuditFilter, *, after_seq: int | None, limit: int
) -> list[asyncpg.Record]:
    """Oldest first (chain order); ``after_seq`` is the last seq of the previous page."""
    return list(await conn.fetch(
        f"SELECT {ENTRY_COLUMNS} FROM catalog.audit_chain WHERE"
        " ($1::uuid IS NULL OR recording_id = $1)"
        " AND ($2::text IS NULL OR actor = $2)"
        " AND ($3::text IS NULL OR action = $3)"
        " AND ($4::timestamptz IS NULL OR occurred_at >= $4)"
        " AND ($5::timestamptz IS NULL OR occurred_at < $5)"
        " AND seq > $6 ORDER BY seq LIMIT $7",
        f.recording_id, f.actor, f.action, f.occurred_from, f.occurred_to, after_seq or 0,
        limit))


async def prune(conn: Connection) -> int:
    """The retention step: remove the prefix older than two years behind a stored anchor."""
    removed: int = await conn.fetchval("SELECT catalog.audit_chain_prune()")
    return removed
