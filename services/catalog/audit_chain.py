"""The catalogue's audit chain (R7): the ``audit.v1`` consumer that appends, the verifying
walk, and the retention step that prunes a prefix older than two years behind an anchor.

Order: entries take their seq under a lock on the one-row chain head (``audit_repository``),
so the chain has one order whatever the number of catalogue replicas and ``audit.v1``
partitions: the order in which the appends committed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from prometheus_client import Counter
from pydantic import AwareDatetime, TypeAdapter

from bwc.audit_chain import Anchor, Break, ChainWalker, KeptHead, NotCanonicalizable, canonical
from bwc.consumer import EventConsumer, Handler, UnusableEvent
from bwc.db import Connection
from bwc.events import AuditEventV1, CloudEvent, EventType, Topic
from bwc.supervisor import TaskFn
from services.catalog import audit_repository as repo
from services.catalog.config import CatalogSettings

log = logging.getLogger(__name__)

APPENDED = Counter("bwc_audit_chain_appended_total", "Audit events appended to the chain")
PRUNED = Counter("bwc_audit_chain_pruned_total",
                 "Audit chain entries removed by the retention step (R7: older than two years)")

#: Rows per round trip of the verifying walk: memory stays bounded by one batch.
VERIFY_BATCH = 10_000


async def append_event(conn: Connection, event: CloudEvent) -> int | None:
    """Chain ``event`` (an ``audit.recorded``); None when its id is chained already."""
    data = event.parsed_data()
    assert isinstance(data, AuditEventV1)
    try:
        body = canonical(event.model_dump(mode="json"))
    except NotCanonicalizable as exc:
        raise UnusableEvent(f"audit event has no RFC 8785 form: {exc}") from exc
    seq = await repo.append(conn, repo.NewEntry(event_id=event.id, canonical=body))
    if seq is not None:
        APPENDED.inc()
    return seq


def handlers() -> dict[str, Handler]:
    async def on_audit_recorded(conn: Connection, event: CloudEvent) -> None:
        await append_event(conn, event)

    return {EventType.AUDIT_RECORDED.value: on_audit_recorded}


def audit_consumer(pool: asyncpg.Pool, settings: CatalogSettings, *, schema: str) -> EventConsumer:
    """Its own consumer group: a slow or stuck chain never holds up the recordings."""
    return EventConsumer(
        pool, settings, schema=schema, topics=[Topic.AUDIT],
        group_id=settings.catalog_audit_consumer_group, client_id="bwc-catalog-audit",
        handlers=handlers())


@dataclass(frozen=True)
class Verification:
    entries: int
    anchor: Anchor
    first_broken: Break | None


async def verify(
    conn: Connection, *, batch_size: int = VERIFY_BATCH, kept: KeptHead | None = None
) -> Verification:
    """Walk the chain from its anchor in one snapshot; the stored head counts as a kept head,
    so a tail removed behind the database's back shows even if nobody outside kept one."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        start, _ = await repo.anchor(conn)
        head_seq, head_hash = await repo.head(conn)
        walker = ChainWalker(start, kept or KeptHead(head_hash, head_seq))
        async for rows in repo.chain_batches(conn, after_seq=start.seq, batch_size=batch_size):
            if not walker.feed(rows):
                break
        broken = walker.finish()
        entries = walker.entries
        disagreement = None if await repo.filter_columns_generated(conn) else \
            await _first_disagreement(conn, after_seq=start.seq,
                                      before_seq=broken.seq if broken else None,
                                      batch_size=batch_size)
        if disagreement is not None:
            # The links up to it hold (walked above), so the entries before it are counted.
            broken, entries = disagreement, disagreement.seq - start.seq - 1
    return Verification(entries, start, broken)


async def _first_disagreement(
    conn: Connection, *, after_seq: int, before_seq: int | None, batch_size: int
) -> Break | None:
    """The first entry before ``before_seq`` whose filter columns (``event_id``, ``actor``,
    ``action``, ``recording_id``, ``occurred_at``) are not its hashed event's. The auditors'
    filters select on them (R7): one written apart from the event would hide an entry from
    "who viewed this recording?". The database derives them (migration 006), so this entry-
    by-entry walk runs only when DDL behind its back made one writable again."""
    async for rows in repo.filter_column_batches(conn, after_seq=after_seq,
                                                 batch_size=batch_size):
        for row in rows:
            if before_seq is not None and row["seq"] >= before_seq:
                return None
            if (disagreement := _filter_columns_disagree(row)) is not None:
                return disagreement
    return None


_AWARE_DATETIME: TypeAdapter[datetime] = TypeAdapter(AwareDatetime)


def _filter_columns_disagree(row: asyncpg.Record) -> Break | None:
    seq = row["seq"]
    try:
        event = json.loads(row["canonical"])
        data = event["data"]
        recording_id = data.get("recording_id")
        hashed = (event["id"], data["actor"], data["action"],
                  None if recording_id is None else uuid.UUID(recording_id),
                  _AWARE_DATETIME.validate_python(data["occurred_at"]))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return Break(seq, "an audit.recorded event", None,
                     f"canonical is not an audit event: {exc!r}"[:300])
    stored = tuple(row[column] for column in repo.FILTER_COLUMNS)
    for column, found, expected in zip(repo.FILTER_COLUMNS, stored, hashed, strict=True):
        if found != expected:
            return Break(seq, str(expected), None if found is None else str(found),
                         f"the filter column {column} is not the hashed event's")
    return None


def retention_task(pool: asyncpg.Pool, *, interval: float) -> TaskFn:
    """The supervised periodic retention step (R7: two years, then a prefix goes)."""

    async def run() -> None:
        while True:
            async with pool.acquire() as conn:
                removed = await repo.prune(conn)
            if removed:
                PRUNED.inc(removed)
                log.info("pruned the audit chain's prefix older than two years",
                         extra={"removed": removed})
            await asyncio.sleep(interval)

    return run


async def head_and_anchor(conn: Connection) -> tuple[int, bytes, Anchor | None, datetime | None]:
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        seq, digest = await repo.head(conn)
        start, pruned_at = await repo.anchor(conn)
    return seq, digest, (start if pruned_at is not None else None), pruned_at
