"""The audit log for auditors (R7): ``/api/v1/audit``, ``/api/v1/audit/verify``,
``/api/v1/audit/head``.

Who may call: ``auditor`` only. Every other role gets 403, a request without a token 401.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import datetime
from typing import Annotated, Any

import asyncpg
from fastapi import Query
from pydantic import BaseModel, Field

from bwc.events import AuditAction
from bwc.instants import UtcDatetime
from bwc.problems import Problem
from bwc.routing import api_router
from bwc.text import Identifier
from services.catalog import audit_chain
from services.catalog import audit_repository as repo
from services.catalog.deps import AuditorDep, PoolDep

router = api_router(prefix="/api/v1/audit", tags=["audit"])

#: What ``_encode_cursor`` produces: unpadded URL-safe base64 of a short JSON array.
Cursor = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_-]+$")]
HexHash = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256, hex")]


class AuditEntry(BaseModel):
    seq: int
    event_id: str
    actor: str
    action: str
    recording_id: uuid.UUID | None
    occurred_at: datetime
    appended_at: datetime
    prev_hash: HexHash
    hash: HexHash
    canonical: str = Field(description="the RFC 8785 bytes that were hashed, as UTF-8 text")
    event: dict[str, Any] = Field(description="the CloudEvent, parsed from `canonical`")


class AuditPage(BaseModel):
    items: list[AuditEntry]
    next_cursor: str | None


class ChainLink(BaseModel):
    seq: int
    hash: HexHash


class Anchor(ChainLink):
    pruned_at: datetime


class Head(ChainLink):
    """The newest entry (seq 0 and 32 zero bytes while the chain is empty)."""

    anchor: Anchor | None = Field(
        description="seq and hash of the last entry the retention step removed; the chain "
                    "verifies from here (null: nothing pruned, it starts from genesis)")


class FirstBroken(BaseModel):
    seq: int
    expected: str
    found: str | None
    reason: str


class Verification(BaseModel):
    ok: bool
    entries: int = Field(description="entries checked, from the anchor on")
    first_broken: FirstBroken | None
    anchor: ChainLink


def _entry(row: asyncpg.Record) -> AuditEntry:
    body = bytes(row["canonical"]).decode()
    return AuditEntry(
        seq=row["seq"], event_id=row["event_id"], actor=row["actor"], action=row["action"],
        recording_id=row["recording_id"], occurred_at=row["occurred_at"],
        appended_at=row["appended_at"], prev_hash=row["prev_hash"].hex(),
        hash=row["hash"].hex(), canonical=body, event=json.loads(body))


def _encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([seq]).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        [seq] = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq < 2**63:
            raise TypeError("cursor must hold a seq")
        return seq
    except (binascii.Error, ValueError, TypeError):
        raise Problem(400, "Invalid cursor", "cursor must be the next_cursor of a previous page",
                      field="cursor") from None


@router.get("", summary="Audit entries in chain order (role: auditor)")
async def list_audit(
    principal: AuditorDep,
    pool: PoolDep,
    recording_id: uuid.UUID | None = None,
    actor: Identifier | None = None,
    action: AuditAction | None = None,
    occurred_from: Annotated[UtcDatetime | None, Query(
        alias="from", description="occurred at or after (inclusive)")] = None,
    occurred_to: Annotated[UtcDatetime | None, Query(
        alias="to", description="occurred before (exclusive)")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[Cursor | None, Query(description="next_cursor of the previous page")] = None,
) -> AuditPage:
    if occurred_from and occurred_to and occurred_from >= occurred_to:
        raise Problem(400, "Invalid time range", "'from' must be before 'to'", field="from")
    flt = repo.AuditFilter(recording_id=recording_id, actor=actor,
                           action=action.value if action else None,
                           occurred_from=occurred_from, occurred_to=occurred_to)
    after = _decode_cursor(cursor) if cursor else None
    async with pool.acquire() as conn:
        rows = await repo.list_entries(conn, flt, after_seq=after, limit=limit + 1)
    items = [_entry(r) for r in rows[:limit]]
    return AuditPage(items=items,
                     next_cursor=_encode_cursor(items[-1].seq) if len(rows) > limit else None)


@router.get("/verify", summary="Walk the hash chain from its anchor (role: auditor)")
async def verify_chain(principal: AuditorDep, pool: PoolDep) -> Verification:
    async with pool.acquire() as conn:
        result = await audit_chain.verify(conn)
    broken = result.first_broken
    return Verification(
        ok=broken is None, entries=result.entries,
        first_broken=FirstBroken(seq=broken.seq, expected=broken.expected, found=broken.found,
                                 reason=broken.reason) if broken else None,
        anchor=ChainLink(seq=result.anchor.seq, hash=result.anchor.hash.hex()))


@router.get("/head", summary="Newest seq and hash, for outside parties to keep (role: auditor)")
async def chain_head(principal: AuditorDep, pool: PoolDep) -> Head:
    async with pool.acquire() as conn:
        seq, digest, start, pruned_at = await audit_chain.head_and_anchor(conn)
    return Head(seq=seq, hash=digest.hex(), anchor=Anchor(
        seq=start.seq, hash=start.hash.hex(), pruned_at=pruned_at)
        if start is not None and pruned_at is not None else None)
