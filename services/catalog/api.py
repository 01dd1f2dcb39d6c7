"""Recording metadata: ``/api/v1/recordings``.

Who may call: ``reviewer`` and ``supervisor`` see all recordings; an ``officer`` sees the
metadata of their own recordings only (others are reported as not found). Other roles: 403.

Every read is audited (R7): the entry (``view_metadata`` for one recording, ``search`` for a
list) commits in the transaction of the read, before the body is sent; if it cannot be
written, nothing is shown (503, ``bwc.audit.transaction``).
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import asdict
from datetime import datetime
from typing import Annotated

import asyncpg
from fastapi import Query
from pydantic import BaseModel, Field

from bwc import audit
from bwc.audit import Actor
from bwc.auth import Principal, Role
from bwc.events import AuditAction, AuditService, DeletionReason, HoldReason
from bwc.instants import UtcDatetime, to_utc
from bwc.problems import Problem
from bwc.routing import api_router, problem_responses
from bwc.text import Identifier
from services.catalog import repository as repo
from services.catalog.deps import PoolDep, RecordingReaderDep
from services.catalog.states import RecordingStatus

router = api_router(prefix="/api/v1/recordings", tags=["recordings"])

#: What ``_encode_cursor`` produces: unpadded URL-safe base64 of a short JSON array.
Cursor = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_-]+$")]


class Hold(BaseModel):
    """A hold (R3). The texts are null once the recording is deleted (R5)."""

    id: uuid.UUID
    reason: HoldReason
    case_reference: str | None
    justification: str | None
    placed_by: str
    placed_at: datetime
    released_by: str | None
    released_at: datetime | None
    release_justification: str | None


class Recording(BaseModel):
    """A recording's metadata. After the deletion (``status`` ``deleted``) the content-bearing
    fields are null: ``content_type``, ``filename``, ``trigger_reason``, ``location`` (R5,
    docs/catalog.md "What remains after deletion")."""

    id: uuid.UUID
    device_id: str
    officer_id: str | None
    recorded_at: datetime
    ended_at: datetime | None
    uploaded_at: datetime
    size_bytes: int
    sha256: str
    content_type: str | None
    filename: str | None
    trigger_reason: str | None
    announced: bool
    imminent_danger: bool
    in_home: bool
    location: str | None
    status: RecordingStatus
    delete_after: datetime
    first_reviewed_at: datetime | None
    deleted_at: datetime | None
    deletion_reason: DeletionReason | None
    holds: list[Hold]


class RecordingPage(BaseModel):
    items: list[Recording]
    next_cursor: str | None


def _recording(row: asyncpg.Record, holds: list[asyncpg.Record]) -> Recording:
    return Recording(**dict(row), holds=[Hold(**dict(h)) for h in holds])


def _encode_cursor(row: Recording) -> str:
    raw = json.dumps([row.recorded_at.isoformat(), str(row.id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        recorded_at, rec_id = json.loads(base64.urlsafe_b64decode(padded))
        if not isinstance(recorded_at, str) or not isinstance(rec_id, str):
            raise TypeError("cursor fields must be strings")  # uuid.UUID(5): AttributeError
        return to_utc(datetime.fromisoformat(recorded_at)), uuid.UUID(rec_id)
    except (binascii.Error, ValueError, TypeError):
        raise Problem(400, "Invalid cursor",
                      "cursor must be the next_cursor of a previous page") from None


def _officer_only(principal: Principal) -> bool:
    return not principal.has(Role.REVIEWER, Role.SUPERVISOR)


def _reader(principal: Principal) -> Actor:
    """The role that granted the read, strongest first."""
    return Actor.of(principal, Role.SUPERVISOR, Role.REVIEWER, Role.OFFICER)


@router.get("", summary="List recordings (roles: reviewer, supervisor; officer: own only)")
async def list_recordings(
    principal: RecordingReaderDep,
    pool: PoolDep,
    device_id: Identifier | None = None,
    officer_id: Identifier | None = None,
    status: RecordingStatus | None = None,
    recorded_from: Annotated[UtcDatetime | None, Query(description="inclusive")] = None,
    recorded_to: Annotated[UtcDatetime | None, Query(description="exclusive")] = None,
    in_home: bool | None = None,
    announced: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[Cursor | None, Query(description="next_cursor of the previous page")] = None,
) -> RecordingPage:
    if _officer_only(principal):
        if officer_id not in (None, principal.sub):
            raise Problem(403, "Forbidden", "an officer may list only their own recordings")
        officer_id = principal.sub
    flt = repo.RecordingFilter(device_id=device_id, officer_id=officer_id, status=status,
                               recorded_from=recorded_from, recorded_to=recorded_to,
                               in_home=in_home, announced=announced)
    after = _decode_cursor(cursor) if cursor else None
    async with audit.transaction(pool) as conn:
        rows = await repo.list_recordings(conn, flt, after=after, limit=limit + 1)
        holds = await repo.holds_of(conn, [r["id"] for r in rows[:limit]])
        items = [_recording(r, holds.get(r["id"], [])) for r in rows[:limit]]
        filters = {k: v for k, v in asdict(flt).items() if v is not None}
        await audit.record(conn, service=AuditService.CATALOG, actor=_reader(principal),
                           action=AuditAction.SEARCH, details={
                               "filters": filters, "limit": limit, "cursor": cursor,
                               "ids": [str(r.id) for r in items]})
    next_cursor = _encode_cursor(items[-1]) if len(rows) > limit else None
    return RecordingPage(items=items, next_cursor=next_cursor)


@router.get("/{recording_id}",
            summary="One recording's metadata (roles: reviewer, supervisor; officer: own only)",
            responses=problem_responses(404))
async def get_recording(
    recording_id: uuid.UUID, principal: RecordingReaderDep, pool: PoolDep
) -> Recording:
    async with audit.transaction(pool) as conn:
        row = await repo.get_recording(conn, recording_id)
        if row is None:
            result = "unknown"
        elif _officer_only(principal) and row["officer_id"] != principal.sub:
            result = "not_own"
        else:
            result = "shown"
        holds = await repo.holds_of(conn, [recording_id]) if result == "shown" else {}
        # An attempt is recorded too: an officer probing other officers' recordings, or ids
        # that do not exist, is what an auditor looks for. The caller sees one 404 for both.
        await audit.record(conn, service=AuditService.CATALOG, actor=_reader(principal),
                           action=AuditAction.VIEW_METADATA, recording_id=recording_id,
                           details={"result": result})
    if row is None or result != "shown":
        raise Problem(404, "Recording not found", f"no recording {recording_id}")
    return _recording(row, holds.get(recording_id, []))
