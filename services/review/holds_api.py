"""Holds (R3), their four-eyes release (R4) and review outcomes.

- ``POST /api/v1/recordings/{id}/holds`` (reviewer): keep a recording as evidence. The S3
  legal hold goes on every stored version first (``legal_hold``), then the hold row,
  ``recording.hold_placed`` and the ``hold_placed`` audit entry commit together.
- ``POST /api/v1/holds/{hold_id}/release`` (supervisor, not the placer): the last release of a
  recording clears the legal hold first, then the release, ``recording.hold_released`` and the
  ``hold_released`` audit entry commit together.
- ``POST /api/v1/recordings/{id}/review`` (reviewer): "Sichtung" without evidence.

Placements, releases and reviews of one recording lock its row and take turns, across
replicas. Audit entries hold ids, reasons, case references and stored versions, never the
free-text justifications or notes: those are the recording's data and go with it (R5), the
entry stays two years (R7).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from pydantic import BaseModel, Field

from bwc import audit
from bwc.audit import Actor
from bwc.auth import Role
from bwc.events import (
    AuditAction,
    AuditService,
    HoldReason,
    RecordingHoldPlacedV1,
    RecordingHoldReleasedV1,
    RecordingReviewedV1,
    ReviewOutcome,
)
from bwc.problems import Problem
from bwc.routing import api_router, problem_responses
from bwc.text import LongText, NonBlankLongText, NonBlankShortText
from services.review import events, legal_hold, view
from services.review import hold_repository as hold_repo
from services.review import repository as repo
from services.review.deps import PoolDep, ReviewerDep, SettingsDep, StoreDep, SupervisorDep
from services.review.view import Recording

router = api_router(prefix="/api/v1", tags=["review"])


class HoldIn(BaseModel):
    reason: HoldReason = Field(description="R3: administrative-offence (owi) or criminal "
                                           "proceedings, averting a danger, or a request of the "
                                           "person recorded to check lawfulness")
    case_reference: NonBlankShortText = Field(description="the case reference (Aktenzeichen)")
    justification: NonBlankLongText = Field(description="why the recording is evidence")


class Hold(BaseModel):
    id: uuid.UUID
    recording_id: uuid.UUID
    reason: HoldReason
    case_reference: str
    justification: str
    placed_by: str
    placed_at: datetime
    released_by: str | None
    released_at: datetime | None
    release_justification: str | None


class ReleaseIn(BaseModel):
    justification: NonBlankLongText = Field(description="why the recording is no longer "
                                                        "needed as evidence")


class ReleasedHold(Hold):
    delete_after: datetime = Field(description="the recording's deadline (R2): once no hold "
                                               "stands it is deleted then, or at the next sweep "
                                               "if that has passed")
    recording_held: bool = Field(description="whether other holds still stand on the recording")


class ReviewIn(BaseModel):
    outcome: ReviewOutcome = Field(description="keeping a recording as evidence is a hold, not "
                                               "an outcome")
    note: LongText | None = None


class Review(BaseModel):
    id: str = Field(description="the id of its recording.reviewed event")
    recording_id: uuid.UUID
    outcome: ReviewOutcome
    note: str | None
    reviewer: str
    reviewed_at: datetime


def _placed(data: RecordingHoldPlacedV1) -> Hold:
    return Hold(id=data.hold_id, recording_id=data.recording_id, reason=data.reason,
                case_reference=data.case_reference, justification=data.justification,
                placed_by=data.placed_by, placed_at=data.placed_at, released_by=None,
                released_at=None, release_justification=None)


def _too_late(recording: Recording) -> Problem:
    return Problem(
        409, "Recording past its deadline",
        f"recording {recording.id} passed its deadline at {recording.delete_after.isoformat()} "
        "without a hold: a recording may be kept as evidence only if it is reviewed and held "
        "within the two weeks after it was made (R2, R3); it is due for deletion",
        rule="R2", delete_after=recording.delete_after.isoformat())


@router.post("/recordings/{recording_id}/holds", status_code=201,
             summary="Place a hold: keep a recording as evidence (role: reviewer)",
             responses=problem_responses(404, 409, 410))
async def place_hold(
    recording_id: uuid.UUID, body: HoldIn, reviewer: ReviewerDep, pool: PoolDep,
    store: StoreDep, settings: SettingsDep,
) -> Hold:
    """The storage barrier first (R6), then the record: no hold stands that S3 does not
    enforce. A recording already held may get a further hold even past its deadline: it is
    lawfully kept, and each proceeding has its own hold."""
    await view.wait_for_arrival(pool, recording_id, wait=settings.review_arrival_wait)
    touched: Recording | None = None
    try:
        async with audit.transaction(pool, lock_timeout=legal_hold.HOLD_LOCK_TIMEOUT) as conn:
            recording = (await view.lookup(conn, recording_id, for_update=True)).present()
            now = datetime.now(UTC)
            if recording.past_deadline(now) and not recording.held:
                raise _too_late(recording)
            touched = recording
            with legal_hold.storage_unavailable("setting the legal hold", "no hold was placed"):
                versions = await legal_hold.hold(store, recording)
            data = RecordingHoldPlacedV1(
                recording_id=recording_id, hold_id=uuid.uuid4(), reason=body.reason,
                case_reference=body.case_reference, justification=body.justification,
                placed_by=reviewer.sub, placed_at=now)
            await repo.insert_hold(conn, data)
            await events.emit(conn, data)
            await audit.record(
                conn, service=AuditService.REVIEW, actor=Actor.of(reviewer, Role.REVIEWER),
                action=AuditAction.HOLD_PLACED, recording_id=recording_id,
                purpose=f"evidence hold (R3): {body.reason.value}, case {body.case_reference}",
                details={"hold_id": str(data.hold_id), "reason": body.reason.value,
                         "case_reference": body.case_reference,
                         "versions_held": [v.detail() for v in versions]})
    except Exception:
        if touched is not None:
            await legal_hold.undo_placement(pool, store, touched)
        raise
    return _placed(data)


@router.post("/holds/{hold_id}/release",
             summary="Release a hold; four eyes: not by the person who placed it "
                     "(role: supervisor)",
             responses=problem_responses(404, 409))
async def release_hold(
    hold_id: uuid.UUID, body: ReleaseIn, supervisor: SupervisorDep, pool: PoolDep,
    store: StoreDep,
) -> ReleasedHold:
    """R4: a supervisor other than the placer (whatever roles the placer holds). The last
    release of a recording clears the legal hold first; S3 failing leaves the hold standing."""
    cleared: Recording | None = None
    try:
        async with audit.transaction(pool, lock_timeout=legal_hold.HOLD_LOCK_TIMEOUT) as conn:
            recording_id = await hold_repo.recording_of(conn, hold_id)
            recording = row = None
            if recording_id is not None:
                recording = (await view.lookup(conn, recording_id, for_update=True)).recording
                row = await hold_repo.lock_hold(conn, hold_id)
            if recording is None or row is None:
                raise Problem(404, "Hold not found", f"no hold {hold_id}", field="hold_id")
            if row["released_at"] is not None:
                raise Problem(409, "Hold already released",
                              f"hold {hold_id} was released by {row['released_by']} at "
                              f"{row['released_at'].isoformat()}", field="hold_id")
            if row["placed_by"] == supervisor.sub:
                raise Problem(403, "Four-eyes rule",
                              f"hold {hold_id} was placed by you ({supervisor.sub}); releasing "
                              "it needs a second person: another supervisor (R4)", rule="R4")
            last = recording.standing_holds == 1
            versions: list[legal_hold.StoredVersion] = []
            if last:
                cleared = recording
                with legal_hold.storage_unavailable("clearing the legal hold",
                                                    "the hold still stands"):
                    versions = await legal_hold.release(store, recording)
            data = RecordingHoldReleasedV1(
                recording_id=recording.id, hold_id=hold_id, released_by=supervisor.sub,
                released_at=datetime.now(UTC), justification=body.justification)
            await repo.release_hold(conn, data)
            await events.emit(conn, data)
            await audit.record(
                conn, service=AuditService.REVIEW, actor=Actor.of(supervisor, Role.SUPERVISOR),
                action=AuditAction.HOLD_RELEASED, recording_id=recording.id,
                purpose=f"release of an evidence hold (R4): case {row['case_reference']}",
                details={"hold_id": str(hold_id), "legal_hold_cleared": last,
                         "versions_released": [v.detail() for v in versions]})
    except Exception:
        if cleared is not None:
            await legal_hold.redo_hold(pool, store, cleared)
        raise
    return ReleasedHold(
        **{**dict(row), "released_by": data.released_by, "released_at": data.released_at,
           "release_justification": data.justification},
        delete_after=recording.delete_after, recording_held=not last)


@router.post("/recordings/{recording_id}/review", status_code=201,
             summary="Record a review outcome (\"Sichtung\"): no evidence (role: reviewer)",
             responses=problem_responses(404, 409, 410))
async def review_recording(
    recording_id: uuid.UUID, body: ReviewIn, reviewer: ReviewerDep, pool: PoolDep,
    settings: SettingsDep,
) -> Review:
    """A standing hold contradicts "no evidence" (409): release it first (R4). A recording
    past its deadline without a hold is due for deletion and answers 410 (R2)."""
    await view.wait_for_arrival(pool, recording_id, wait=settings.review_arrival_wait)
    async with audit.transaction(pool, lock_timeout=legal_hold.HOLD_LOCK_TIMEOUT) as conn:
        now = datetime.now(UTC)
        recording = (await view.lookup(conn, recording_id, for_update=True)).available(now)
        if recording.held:
            raise Problem(409, "Recording is held",
                          f"recording {recording_id} is held as evidence "
                          f"({recording.standing_holds} standing holds): a \"no evidence\" "
                          "outcome contradicts that; a "
                          "supervisor releases the holds first (R3, R4)", rule="R3")
        data = RecordingReviewedV1(recording_id=recording_id, outcome=body.outcome,
                                   note=body.note, reviewer=reviewer.sub, reviewed_at=now)
        event = await events.emit(conn, data)
        await repo.insert_review(conn, event.id, data)
        await audit.record(
            conn, service=AuditService.REVIEW, actor=Actor.of(reviewer, Role.REVIEWER),
            action=AuditAction.REVIEW, recording_id=recording_id,
            purpose=f"review (Sichtung): {body.outcome.value}",
            details={"review_id": event.id, "outcome": body.outcome.value,
                     "note_given": body.note is not None})
    return Review(id=event.id, recording_id=recording_id, outcome=data.outcome, note=data.note,
                  reviewer=data.reviewer, reviewed_at=data.reviewed_at)
