"""Judicial confirmations and the evidence export (R7, R8).

- ``POST /api/v1/recordings/{id}/judicial-confirmation`` (supervisor): a court confirmed the
  recording of a measure inside a home. Only for recordings made in a home (409 otherwise),
  once per recording (409 for a second); stored with the ``judicial_confirmation`` audit entry
  in one transaction, under the recording's row lock. No ``recordings.v1`` event: DESIGN §3
  names none, and nothing outside review acts on it.
- ``GET /api/v1/recordings/{id}/export?purpose=`` (reviewer, supervisor): the evidence package
  (``evidence_package``). In this order, so that every export is audited and nothing
  unaudited or unconfirmed leaves: the recording is available (404, 410); one made in a home
  has its judicial confirmation (409, R8); the audit trail is read from the catalogue and the
  stored object is opened, with no database connection held meanwhile (either failing is 503
  with ``Retry-After``: nothing was exported, so nothing is recorded); then, checked again
  against the state it is written in, the ``export`` entry commits (R7) — and only then does
  the first byte go out.

Like every access to a recording (catalogue metadata, media), a refused attempt (404, 409,
410) is recorded too, with its ``result``; a dependency failing (503) records nothing:
nothing was exported, and the request did not get as far as a decision.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import asyncpg
from fastapi.responses import Response, StreamingResponse
from pydantic import AfterValidator, BaseModel, Field

from bwc import audit
from bwc.audit import Actor
from bwc.auth import Role
from bwc.db import Connection
from bwc.events import AuditAction, AuditService
from bwc.instants import UtcDatetime
from bwc.problems import Problem
from bwc.routing import api_router, problem_responses
from bwc.text import NonBlankShortText
from services.review import confirmation_repository as confirmations
from services.review import evidence_package as package
from services.review import legal_hold, view
from services.review.catalog_client import CatalogClient, CatalogUnavailable
from services.review.deps import (
    CatalogDep,
    PoolDep,
    Purpose,
    SettingsDep,
    StoreDep,
    SupervisorDep,
    ViewerDep,
)
from services.review.stored_object import StoredObjectGone, gone, open_stored
from services.review.view import Recording

router = api_router(prefix="/api/v1", tags=["review"])

CONFIRMATION_PATH = "/api/v1/recordings/{recording_id}/judicial-confirmation"
RETRY_AFTER = "5"


def _not_in_future(value: datetime) -> datetime:
    if value > datetime.now(UTC):
        raise ValueError("lies in the future: a decision is recorded after the court made it")
    return value


class JudicialConfirmationIn(BaseModel):
    reference: NonBlankShortText = Field(description="the court's file number "
                                                     "(Aktenzeichen) of the decision")
    court: NonBlankShortText = Field(description="the court that confirmed the measure, "
                                                 "e.g. Amtsgericht Köln")
    decided_at: Annotated[UtcDatetime, AfterValidator(_not_in_future)] = Field(
        description="when the court decided: RFC 3339 with a time zone, not in the future")


class JudicialConfirmation(BaseModel):
    recording_id: uuid.UUID
    reference: str
    court: str
    decided_at: datetime
    recorded_by: str
    recorded_at: datetime


@router.post("/recordings/{recording_id}/judicial-confirmation", status_code=201,
             summary="Record the judicial confirmation of a recording made in a home, which "
                     "its export needs (role: supervisor)",
             responses=problem_responses(404, 409, 410))
async def confirm(
    recording_id: uuid.UUID, body: JudicialConfirmationIn, supervisor: SupervisorDep,
    pool: PoolDep, settings: SettingsDep,
) -> JudicialConfirmation:
    """R8: stored once, by a supervisor, for a recording made in a home. Its reference and
    court are the court's, not data of the person filmed, so the audit entry carries them."""
    await view.wait_for_arrival(pool, recording_id, wait=settings.review_arrival_wait)
    # A hold placement holds the row while it talks to S3: wait as long as placements do.
    async with audit.transaction(pool, lock_timeout=legal_hold.HOLD_LOCK_TIMEOUT) as conn:
        recording = (await view.lookup(conn, recording_id, for_update=True)).present()
        if not recording.in_home:
            raise Problem(409, "Not recorded in a home",
                          f"recording {recording_id} was not made in a home (in_home=false): "
                          "a judicial confirmation is needed, and recorded, only for "
                          "recordings made in a home (R8)", rule="R8")
        existing = await confirmations.get_confirmation(conn, recording_id)
        if existing is not None:
            raise Problem(409, "Judicial confirmation already recorded",
                          f"recording {recording_id} was confirmed by {existing['court']} "
                          f"({existing['reference']}), recorded by {existing['recorded_by']} "
                          f"at {existing['recorded_at'].isoformat()}; a confirmation is "
                          "recorded once", rule="R8")
        row = await confirmations.insert_confirmation(
            conn, recording_id=recording_id, reference=body.reference, court=body.court,
            decided_at=body.decided_at, recorded_by=supervisor.sub,
            recorded_at=datetime.now(UTC))
        await audit.record(
            conn, service=AuditService.REVIEW, actor=Actor.of(supervisor, Role.SUPERVISOR),
            action=AuditAction.JUDICIAL_CONFIRMATION, recording_id=recording_id,
            purpose=f"judicial confirmation of a recording made in a home (R8): {body.court}, "
                    f"{body.reference}",
            details={"reference": body.reference, "court": body.court,
                     "decided_at": body.decided_at.isoformat()})
    return JudicialConfirmation(**dict(row))


_EXPORT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "the evidence package, streamed: `metadata.json`, "
                         "`audit-trail.jsonl`, `media/<id><ext>`, `SHA256SUMS`",
          "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}}},
    **problem_responses(404, 409, 410, 503),
}


def _unavailable(title: str, reason: str) -> Problem:
    return Problem(503, title, f"{reason}; nothing was exported and no export was recorded; "
                               "try again after the time in Retry-After",
                   headers={"Retry-After": RETRY_AFTER})


async def _audit_trail(catalog: CatalogClient, recording_id: uuid.UUID) -> package.AuditTrail:
    try:
        return await catalog.audit_trail(recording_id)
    except CatalogUnavailable as exc:
        raise _unavailable("Catalogue unavailable",
                           f"the recording's audit trail could not be read: {exc}") from exc


async def _exportable(
    conn: Connection, found: view.Lookup, now: datetime
) -> tuple[Recording, asyncpg.Record | None]:
    """The recording and its judicial confirmation, or the Problem that refuses the export:
    404, 410 (deleted, or past its deadline without a hold), 409 (R8)."""
    recording = found.available(now)
    confirmation = await confirmations.get_confirmation(conn, recording.id)
    if recording.in_home and confirmation is None:
        raise Problem(
            409, "Judicial confirmation missing",
            f"recording {recording.id} was made in a home: it may be exported only after a "
            "judicial confirmation is recorded (R8); a supervisor records it with POST "
            f"{CONFIRMATION_PATH.format(recording_id=recording.id)}", rule="R8")
    return recording, confirmation


def _refusal(found: view.Lookup, problem: Problem) -> str:
    """The ``result`` of a refused export's audit entry."""
    if found.result != "ok":
        return found.result  # unknown, deleted
    return "confirmation_missing" if problem.status == 409 else "expired"


@dataclass(frozen=True)
class _Decision:
    """Whether the export may go out, and what its audit entry says."""

    result: str  # ok, unknown, deleted, expired, confirmation_missing
    recording: Recording | None = None
    confirmation: asyncpg.Record | None = None
    refused: Problem | None = None


async def _decide(conn: Connection, recording_id: uuid.UUID) -> _Decision:
    found = await view.lookup(conn, recording_id)
    try:
        recording, confirmation = await _exportable(conn, found, datetime.now(UTC))
    except Problem as problem:
        return _Decision(_refusal(found, problem), refused=problem)
    return _Decision("ok", recording, confirmation)


@router.get("/recordings/{recording_id}/export",
            summary="Evidence package (zip: media, metadata.json, audit trail, SHA256SUMS), "
                    "audited with its purpose (roles: reviewer, supervisor)",
            response_class=StreamingResponse, responses=_EXPORT_RESPONSES)
async def export(
    recording_id: uuid.UUID, purpose: Purpose, viewer: ViewerDep, pool: PoolDep,
    store: StoreDep, settings: SettingsDep, catalog: CatalogDep,
) -> Response:
    await view.wait_for_arrival(pool, recording_id, wait=settings.review_arrival_wait)
    actor = Actor.of(viewer, Role.SUPERVISOR, Role.REVIEWER)
    # A short read first: no database connection is held while the catalogue and S3 answer.
    async with pool.acquire() as conn:
        decision = await _decide(conn, recording_id)
    trail: package.AuditTrail | None = None
    media: AsyncGenerator[bytes, None] | None = None
    try:
        if decision.recording is not None and decision.refused is None:
            trail = await _audit_trail(catalog, recording_id)
            try:
                media = await open_stored(
                    store, decision.recording,
                    outcome="nothing was exported and no export was recorded")
            except StoredObjectGone:
                decision = _Decision("deleted", refused=gone(recording_id))
        async with audit.transaction(pool) as conn:
            now = datetime.now(UTC)
            if media is not None:
                # The state the entry is written in decides (deleted or due meanwhile).
                decision = await _decide(conn, recording_id)
            recording = decision.recording
            if decision.refused is not None or recording is None or trail is None:
                # An attempt is recorded like a media access: probing is what an auditor
                # looks for. Its result, not a package, is what the entry holds.
                await audit.record(
                    conn, service=AuditService.REVIEW, actor=actor,
                    action=AuditAction.EXPORT, recording_id=recording_id, purpose=purpose,
                    details={"result": decision.result})
            else:
                holds = await confirmations.holds_of(conn, recording_id)
                entry = await audit.record(
                    conn, service=AuditService.REVIEW, actor=actor, action=AuditAction.EXPORT,
                    recording_id=recording_id, purpose=purpose,
                    details={"result": "ok", "object_version_id": recording.object_version_id,
                             "sha256": recording.sha256, "size_bytes": recording.size_bytes,
                             "format": "zip", "audit_trail_entries": trail.entries})
                confirmation = decision.confirmation
                metadata_json = package.metadata(
                    recording, holds=[dict(h) for h in holds],
                    confirmation=dict(confirmation) if confirmation is not None else None,
                    export=package.Export(exported_at=now, exported_by=viewer.sub,
                                          role=actor.role, purpose=purpose,
                                          request_id=entry.data.get("request_id")),
                    trail=trail)
        if decision.refused is not None:
            raise decision.refused
    except BaseException:
        if media is not None:
            await media.aclose()
        if trail is not None:
            trail.close()
        raise
    assert recording is not None and trail is not None and media is not None
    # The entry is committed: from here on the package may go out.
    return StreamingResponse(
        package.stream(recording, metadata_json=metadata_json, trail=trail, media=media,
                       stamp=now),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="recording-{recording_id}.zip"',
                 "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})
